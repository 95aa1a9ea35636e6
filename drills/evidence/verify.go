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
	Signed           bool     `json:"signed"`
	SignatureChecked bool     `json:"signature_checked"`
	Notes            []string `json:"notes,omitempty"`
}

func (r *Report) fail(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Verify checks a bundle: every file against the manifest, the manifest
// against the signature (when pub is given), every run's record against its
// chain hash, each drill's chain for gaps, and the CSV against the runs.
// It needs neither the database nor the network.
func Verify(bundle io.ReaderAt, size int64, opts VerifyOpts) (*Report, error) {
	rep := &Report{}
	zr, err := zip.NewReader(bundle, size)
	if err != nil {
		return nil, fmt.Errorf("not a zip file: %w", err)
	}
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
		return rep, nil
	}
	var total int64
	for _, f := range zr.File {
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
				return rep, nil
			}
			continue
		}
		if _, dup := files[f.Name]; !dup {
			files[f.Name] = b
		}
	}
	manifestBytes, ok := files[ManifestFile]
	if !ok {
		rep.fail("%s: missing: nothing in this bundle can be checked", ManifestFile)
		return rep, nil
	}
	var m Manifest
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		rep.fail("%s: not valid JSON: %v", ManifestFile, err)
		return rep, nil
	}
	checkSignature(rep, files, manifestBytes, opts)
	checkFiles(rep, files, &m)
	runs := checkRuns(rep, files, &m)
	checkCSV(rep, files, runs)
	rep.Intact = len(rep.Problems) == 0
	return rep, nil
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
// returns the ids of the runs found.
func checkRuns(rep *Report, files map[string][]byte, m *Manifest) map[int64]bool {
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
	return ids
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
