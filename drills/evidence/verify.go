package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"drill/drills"
)

// maxFileSize bounds what Verify reads of one file, and maxTotalSize of
// all files together: a small zip may claim (or hold) gigabytes.
const (
	maxFileSize  = 256 << 20
	maxTotalSize = 1 << 30
)

// VerifyOpts says what Verify checks the signature with.
type VerifyOpts struct {
	// PubKey is the signer's public key. Without it, the signature is not
	// checked and the bundle is not intact, unless UnsignedOK.
	PubKey ed25519.PublicKey
	// UnsignedOK accepts a bundle whose signature was not checked (no key
	// given) or that has none: its files then only match its manifest.
	UnsignedOK bool
	// Previous, when set, is an earlier bundle of the same installation:
	// this one must extend its chains (no run of it deleted or rewritten).
	Previous     io.ReaderAt
	PreviousSize int64
}

// Report is the outcome of Verify. Intact is true only when every check
// ran and passed; Problems names each file or run that failed.
type Report struct {
	Intact   bool     `json:"intact"`
	Problems []string `json:"problems"`
	Runs     int      `json:"runs"`
	Drills   []string `json:"drills"`
	// Signed says the bundle carries a signature; SignatureChecked that it
	// was verified against a public key.
	Signed           bool `json:"signed"`
	SignatureChecked bool `json:"signature_checked"`
	// SealedRuns counts the runs whose seal was checked and valid.
	SealedRuns int      `json:"sealed_runs"`
	Notes      []string `json:"notes,omitempty"`
}

func (r *Report) fail(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Verify checks a bundle: every file against the manifest, the manifest
// against the signature (when pub is given), every run's record against its
// chain hash, each drill's chain for gaps, and the CSV against the runs.
// It needs neither the database nor the network.
func Verify(bundle io.ReaderAt, size int64, opts VerifyOpts) (*Report, error) {
	rep, got, err := verify(bundle, size, opts)
	if err != nil || got == nil || opts.Previous == nil {
		return rep, err
	}
	prevRep, prev, err := verify(opts.Previous, opts.PreviousSize, VerifyOpts{PubKey: opts.PubKey, UnsignedOK: opts.UnsignedOK})
	if err != nil {
		return nil, fmt.Errorf("previous bundle: %w", err)
	}
	for _, p := range prevRep.Problems {
		rep.fail("previous bundle: %s", p)
	}
	if prev != nil {
		checkExtends(rep, got, prev)
	}
	rep.Intact = len(rep.Problems) == 0
	return rep, nil
}

// parsed is what verify read of a bundle.
type parsed struct {
	m       Manifest
	byDrill map[string][]RunFile // in chain order
}

func verify(bundle io.ReaderAt, size int64, opts VerifyOpts) (*Report, *parsed, error) {
	rep := &Report{}
	zr, err := zip.NewReader(bundle, size)
	if err != nil {
		return nil, nil, fmt.Errorf("not a zip file: %w", err)
	}
	files := readZip(rep, zr)
	if files == nil {
		return rep, nil, nil
	}
	return verifyFiles(rep, files, opts)
}

// readZip reads every file of a bundle, within maxFileSize and
// maxTotalSize; nil when the bundle is too big to read.
func readZip(rep *Report, zr *zip.Reader) map[string][]byte {
	files := map[string][]byte{}
	seen := map[string]bool{}
	var declared uint64
	for _, f := range zr.File {
		declared += f.UncompressedSize64
		if seen[f.Name] {
			// Readers differ on which copy they show: the bundle is ambiguous.
			rep.fail("%s: appears more than once in the zip", f.Name)
		}
		seen[f.Name] = true
	}
	if declared > maxTotalSize {
		rep.fail("the files hold %d bytes uncompressed, more than the %d bytes (1 GiB) verify reads", declared, maxTotalSize)
		return nil
	}
	var total int64
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			if f.UncompressedSize64 > 0 || !strings.HasSuffix(f.Name, "/") {
				rep.fail("%s: a folder entry that holds content: a zip reader may show it as a file", f.Name)
			}
			continue // folders a zip tool adds hold no content
		}
		if f.UncompressedSize64 > maxFileSize {
			rep.fail("%s: larger than %d bytes", f.Name, maxFileSize)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			rep.fail("%s: unreadable: %v", f.Name, err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(rc, min(maxFileSize, maxTotalSize-total)+1))
		rc.Close()
		total += int64(len(b))
		if err == nil && (len(b) > maxFileSize || total > maxTotalSize) {
			err = fmt.Errorf("more data than its header says")
		}
		if err != nil {
			rep.fail("%s: unreadable: %v", f.Name, err)
			if total > maxTotalSize {
				return nil
			}
			continue
		}
		if _, dup := files[f.Name]; !dup {
			files[f.Name] = b
		}
	}
	return files
}

// VerifyDir checks a bundle unzipped into dir, as Verify checks the zip.
func VerifyDir(dir string, opts VerifyOpts) (*Report, error) {
	rep := &Report{}
	files := map[string][]byte{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			rep.fail("%s: not a regular file", name)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if total += info.Size(); info.Size() > maxFileSize || total > maxTotalSize {
			return fmt.Errorf("%s: the bundle is larger than verify reads (%d MiB a file, 1 GiB in all)", name, maxFileSize>>20)
		}
		b, err := os.ReadFile(p)
		files[name] = b
		return err
	})
	if err != nil {
		return nil, err
	}
	rep2, _, err := verifyFiles(rep, files, opts)
	return rep2, err
}

// verifyFiles checks the files of a bundle, whatever held them. Files a
// zip tool adds or a folder the bundle was zipped in are set aside first,
// so that a bundle unzipped and zipped again by hand still verifies: what
// is checked is content, not zip bytes.
func verifyFiles(rep *Report, files map[string][]byte, opts VerifyOpts) (*Report, *parsed, error) {
	files = normalize(rep, files)
	manifestBytes, ok := files[ManifestFile]
	if !ok {
		rep.fail("%s: missing: nothing in this bundle can be checked", ManifestFile)
		return rep, nil, nil
	}
	var m Manifest
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		rep.fail("%s: not valid JSON: %v", ManifestFile, err)
		return rep, nil, nil
	}
	checkSignature(rep, files, manifestBytes, opts)
	checkFiles(rep, files, &m)
	runs, byDrill := checkRuns(rep, files, &m)
	checkCSV(rep, files, runs)
	checkSeals(rep, &m, byDrill)
	checkLogs(rep, files, byDrill)
	for _, a := range m.Altered {
		rep.fail("run %d (%s): its row in the state database was changed after it was sealed (%s); this bundle holds the sealed record", a.ID, a.Drill, a.Problem)
	}
	rep.Intact = len(rep.Problems) == 0
	return rep, &parsed{m: m, byDrill: byDrill}, nil
}

// normalize drops what zip tools add (__MACOSX/, .DS_Store) and, when the
// manifest sits in a single top folder, the folder from every name.
func normalize(rep *Report, files map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	var junk []string
	for name, b := range files {
		base := path.Base(name)
		if strings.HasPrefix(name, "__MACOSX/") || base == ".DS_Store" || base == "Thumbs.db" {
			junk = append(junk, name)
			continue
		}
		out[name] = b
	}
	if len(junk) > 0 {
		sort.Strings(junk)
		rep.Notes = append(rep.Notes, "set aside what a zip tool added: "+strings.Join(junk, ", "))
	}
	if _, ok := out[ManifestFile]; ok {
		return out
	}
	var top string
	for name := range out {
		dir, _, ok := strings.Cut(name, "/")
		if !ok || (top != "" && dir != top) {
			return out
		}
		top = dir
	}
	if _, ok := out[top+"/"+ManifestFile]; !ok {
		return out
	}
	stripped := map[string][]byte{}
	for name, b := range out {
		stripped[strings.TrimPrefix(name, top+"/")] = b
	}
	rep.Notes = append(rep.Notes, "the bundle's files are in folder "+top+"/")
	return stripped
}

func checkSignature(rep *Report, files map[string][]byte, manifest []byte, opts VerifyOpts) {
	sigText, signed := files[SignatureFile]
	rep.Signed = signed
	pub := opts.PubKey
	switch {
	case pub == nil && signed && opts.UnsignedOK:
		rep.Notes = append(rep.Notes, "the bundle is signed, but the signature was not checked: pass --pubkey KEYFILE.pub")
	case pub == nil && opts.UnsignedOK:
		rep.Notes = append(rep.Notes, "the bundle is not signed: its files match its manifest, but anyone could have written both")
	case pub == nil && signed:
		rep.fail("%s: not checked: pass --pubkey KEYFILE.pub (the signer's public key), or --unsigned-ok to accept a bundle whose signature is not checked", SignatureFile)
	case pub == nil:
		rep.fail("%s: missing: the bundle is not signed, so anyone could have written its files and manifest; pass --unsigned-ok to accept that", SignatureFile)
	case !signed:
		rep.fail("%s: missing: the bundle is not signed", SignatureFile)
	default:
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
		if err != nil || !ed25519.Verify(pub, manifest, sig) {
			rep.fail("%s: the signature does not match %s for this public key (the manifest was changed, or the key is not the signer's)", SignatureFile, ManifestFile)
			return
		}
		rep.SignatureChecked = true
	}
}

func checkFiles(rep *Report, files map[string][]byte, m *Manifest) {
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, ok := files[n]
		switch {
		case !ok:
			rep.fail("%s: missing (listed in the manifest)", n)
		case sha256Hex(b) != m.Files[n]:
			rep.fail("%s: changed (its SHA-256 does not match the manifest)", n)
		}
	}
	var extra []string
	for n := range files {
		if _, listed := m.Files[n]; !listed && n != ManifestFile && n != SignatureFile {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	for _, n := range extra {
		rep.fail("%s: not in the manifest (added after export)", n)
	}
}

// checkRuns verifies each run's chain hash and each drill's chain; it
// returns the ids of the runs found, and the runs by drill in chain order.
func checkRuns(rep *Report, files map[string][]byte, m *Manifest) (map[int64]bool, map[string][]RunFile) {
	byDrill := map[string][]RunFile{}
	ids := map[int64]bool{}
	for name, b := range files {
		if !strings.HasPrefix(name, runsDir) {
			continue
		}
		var rf RunFile
		if err := json.Unmarshal(b, &rf); err != nil {
			rep.fail("%s: not valid JSON: %v", name, err)
			continue
		}
		if name != runFileName(rf.ID) {
			rep.fail("%s: holds run %d", name, rf.ID)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, rf.Record); err != nil {
			rep.fail("run %d: record is not valid JSON", rf.ID)
			continue
		}
		if h, err := drills.ChainHash(rf.PrevHash, compact.Bytes()); err != nil || h != rf.ChainHash {
			rep.fail("run %d (%s): its record does not match its chain hash: the record was edited", rf.ID, name)
		}
		var inner struct {
			Run struct {
				ID    int64  `json:"id"`
				Drill string `json:"drill"`
			} `json:"run"`
		}
		if json.Unmarshal(rf.Record, &inner) == nil && (inner.Run.ID != rf.ID || inner.Run.Drill != rf.Drill) {
			rep.fail("run %d (%s): the record is of run %d of drill %q", rf.ID, name, inner.Run.ID, inner.Run.Drill)
		}
		ids[rf.ID] = true
		byDrill[rf.Drill] = append(byDrill[rf.Drill], rf)
	}
	rep.Runs = len(ids)
	if m.Runs != len(ids) {
		rep.fail("%s: lists %d runs, the bundle holds %d", ManifestFile, m.Runs, len(ids))
	}
	for drill, runs := range byDrill {
		rep.Drills = append(rep.Drills, drill)
		sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
		expect, anchored := m.ChainAnchors[drill]
		if !anchored {
			rep.fail("drill %s: no chain anchor in the manifest", drill)
		}
		for _, rf := range runs {
			if rf.PrevHash != expect {
				rep.fail("drill %s: the chain is broken before run %d: the run it follows (chain hash %s) is missing — a run was deleted or removed", drill, rf.ID, short(rf.PrevHash))
			}
			expect = rf.ChainHash
		}
	}
	sort.Strings(rep.Drills)
	return ids, byDrill
}

// checkSeals checks every run's seal against the bundle's sealing key. A
// run without a seal after a sealed run of its drill had its seal removed.
// checkLogs compares each restore log with the digest its run's sealed
// record carries.
func checkLogs(rep *Report, files map[string][]byte, byDrill map[string][]RunFile) {
	vouched := map[string]bool{}
	defer func() {
		for name := range files {
			if strings.HasPrefix(name, logsDir) && !vouched[name] {
				rep.fail("%s: no run's record has its digest: it is not part of the evidence", name)
			}
		}
	}()
	for _, runs := range byDrill {
		for _, rf := range runs {
			var inner struct {
				Run struct {
					RestoreLogSHA256 string `json:"restore_log_sha256"`
				} `json:"run"`
			}
			if json.Unmarshal(rf.Record, &inner) != nil || inner.Run.RestoreLogSHA256 == "" {
				continue
			}
			name := LogFileName(rf.ID)
			vouched[name] = true
			b, ok := files[name]
			switch {
			case !ok:
				rep.fail("%s: missing (run %d's record has its digest)", name, rf.ID)
			case drills.LogDigest(string(b)) != inner.Run.RestoreLogSHA256:
				rep.fail("%s: does not match the digest in run %d's record (in its chain hash)", name, rf.ID)
			}
		}
	}
}

func checkSeals(rep *Report, m *Manifest, byDrill map[string][]RunFile) {
	if m.SealingPublicKey == "" {
		for _, runs := range byDrill {
			for _, rf := range runs {
				if rf.Seal != "" {
					rep.Notes = append(rep.Notes, "runs carry seals, but the manifest names no sealing key: the seals were not checked")
					return
				}
			}
		}
		rep.Notes = append(rep.Notes, "no sealing key: the runs' chains were checked, but someone who could write to the state database could have rewritten a run and its chain hash, or added a sign-off")
		return
	}
	pub, err := parsePublicKeyPEM([]byte(m.SealingPublicKey))
	if err != nil || drills.KeyID(pub) != m.SealingKeyID {
		rep.fail("%s: sealing_public_key is not a valid key with id %s", ManifestFile, m.SealingKeyID)
		return
	}
	keys := drills.NewSealKeys(pub)
	for i, p := range m.SealingPreviousPublicKeys {
		prev, err := parsePublicKeyPEM([]byte(p))
		if err != nil {
			rep.fail("%s: sealing_previous_public_keys[%d] is not a valid key", ManifestFile, i)
			return
		}
		keys[drills.KeyID(prev)] = prev
	}
	unsealed := 0
	for _, drill := range sortedKeys(byDrill) {
		var lastSealed int64
		for _, rf := range byDrill[drill] {
			key, known := keys[rf.SealKeyID]
			switch {
			case rf.Seal == "" && lastSealed != 0:
				rep.fail("run %d (%s): not sealed, though run %d before it was: its seal was removed", rf.ID, drill, lastSealed)
			case rf.Seal == "":
				unsealed++
			case !known:
				rep.fail("run %d (%s): sealed by key %s, which is neither the manifest's sealing key nor one it replaced: the seal cannot be checked, so it could have been made by anyone who can write to the state database", rf.ID, drill, rf.SealKeyID)
			case !drills.CheckSeal(key, rf.ChainHash, rf.Seal):
				rep.fail("run %d (%s): its seal does not match its chain hash: the record and its chain hash were rewritten", rf.ID, drill)
			default:
				lastSealed = rf.ID
				rep.SealedRuns++
			}
		}
	}
	if unsealed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d run(s) finished before the sealing key was set up carry no seal", unsealed))
	}
	checkSignoffSeals(rep, keys, byDrill)
}

// checkSignoffSeals checks each sign-off's seal. A sign-off on a run a
// known key sealed was given while a key was set up, so it must carry a
// seal of a known key: one without was written into the state database by
// hand.
func checkSignoffSeals(rep *Report, keys drills.SealKeys, byDrill map[string][]RunFile) {
	unsealed := 0
	for _, drill := range sortedKeys(byDrill) {
		for _, rf := range byDrill[drill] {
			_, runSealed := keys[rf.SealKeyID]
			for i, so := range rf.Signoffs {
				key, known := keys[so.SealKeyID]
				switch {
				case so.Seal == "" && rf.Seal != "" && runSealed:
					rep.fail("run %d (%s): sign-off %d (%s by %s) carries no seal, though the run was sealed by the key: it was not given through drill", rf.ID, drill, i+1, so.Kind, so.SignedBy)
				case so.Seal == "":
					unsealed++
				case !known:
					rep.fail("run %d (%s): sign-off %d (%s by %s) is sealed by key %s, which is neither the manifest's sealing key nor one it replaced: it was not given through drill", rf.ID, drill, i+1, so.Kind, so.SignedBy, so.SealKeyID)
				case !drills.CheckSignoffSeal(key, rf.ID, rf.ChainHash, so):
					rep.fail("run %d (%s): sign-off %d (%s by %s): its seal does not match it: it was edited or moved from another run", rf.ID, drill, i+1, so.Kind, so.SignedBy)
				}
			}
		}
	}
	if unsealed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d sign-off(s) given before the sealing key was set up carry no seal", unsealed))
	}
}

// checkExtends checks that a bundle extends an earlier one: every run of
// both says the same, and each drill's newest run in the earlier bundle is
// in this one, or is where this one's chain starts.
func checkExtends(rep *Report, got, prev *parsed) {
	for _, drill := range sortedKeys(prev.byDrill) {
		old := prev.byDrill[drill]
		if len(old) == 0 {
			continue
		}
		if f := got.m.Filters.Drill; f != "" && f != drill {
			rep.Notes = append(rep.Notes, fmt.Sprintf("drill %s: in the previous bundle, left out of this one by its drill filter", drill))
			continue
		}
		byID := map[int64]RunFile{}
		for _, rf := range got.byDrill[drill] {
			byID[rf.ID] = rf
		}
		for _, o := range old {
			if n, ok := byID[o.ID]; ok && n.ChainHash != o.ChainHash {
				rep.fail("run %d (%s): differs from the previous bundle's (chain hash %s, was %s): history was rewritten", o.ID, drill, short(n.ChainHash), short(o.ChainHash))
			}
		}
		head := old[len(old)-1]
		if _, ok := byID[head.ID]; ok || got.m.ChainAnchors[drill] == head.ChainHash && len(got.byDrill[drill]) > 0 {
			continue
		}
		if len(got.byDrill[drill]) == 0 {
			rep.fail("drill %s: the previous bundle has runs up to %d, this one has none: runs were deleted, or this export's window leaves them out", drill, head.ID)
			continue
		}
		rep.fail("drill %s: this bundle does not extend the previous one: its newest run %d (chain hash %s) is neither in this bundle nor where this bundle's chain starts — runs were deleted or rewritten, or this bundle was exported with a later --since", drill, head.ID, short(head.ChainHash))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func short(h string) string {
	if h == "" {
		return "(none: the drill's first run)"
	}
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

func checkCSV(rep *Report, files map[string][]byte, runs map[int64]bool) {
	b, ok := files[CSVFile]
	if !ok {
		return // reported as missing by checkFiles
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) == 0 {
		rep.fail("%s: not valid CSV", CSVFile)
		return
	}
	seen := map[int64]bool{}
	for i, row := range rows[1:] {
		id, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			rep.fail("%s: row %d has no run id", CSVFile, i+2)
			continue
		}
		seen[id] = true
		if !runs[id] {
			rep.fail("%s: row %d is run %d, which has no run file", CSVFile, i+2, id)
		}
	}
	var missing []int64
	for id := range runs {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	for _, id := range missing {
		rep.fail("%s: no row for run %d", CSVFile, id)
	}
}
