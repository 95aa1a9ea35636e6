package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"drill/drills"
	"drill/drills/statedb"
)

// ExportOpts selects what goes into a bundle and how it is signed.
type ExportOpts struct {
	Filter statedb.SealedFilter
	// Key signs the manifest; nil leaves the bundle unsigned.
	Key     ed25519.PrivateKey
	Version string
	Now     time.Time
}

// Export writes a bundle of the sealed runs matching opts.Filter to w as a
// zip file and returns its manifest.
func Export(ctx context.Context, store *statedb.Store, w io.Writer, opts ExportOpts) (*Manifest, error) {
	sealed, anchors, err := store.SealedRuns(ctx, opts.Filter)
	if err != nil {
		return nil, err
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	files := map[string][]byte{}
	var records []decoded
	var altered []AlteredRun
	for _, s := range sealed {
		// The bundle holds sealed records; a row changed since is named.
		run, err := store.Run(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		if st := run.Seal; st != nil && st.Integrity == drills.IntegrityAltered {
			altered = append(altered, AlteredRun{ID: s.ID, Drill: s.Drill, Problem: st.Problem})
		}
		rf := RunFile{ID: s.ID, Drill: s.Drill, Record: s.Record, PrevHash: s.PrevHash, ChainHash: s.ChainHash, Signoffs: s.Signoffs,
			Seal: s.Seal, SealKeyID: s.SealKeyID}
		if rf.Signoffs == nil {
			rf.Signoffs = []drills.Signoff{}
		}
		b, err := json.MarshalIndent(rf, "", "  ")
		if err != nil {
			return nil, err
		}
		files[runFileName(s.ID)] = append(b, '\n')
		var rec drills.SealedRecord
		if err := json.Unmarshal(s.Record, &rec); err != nil {
			return nil, fmt.Errorf("run %d: sealed record: %w", s.ID, err)
		}
		records = append(records, decoded{File: rf, Rec: rec})
	}
	if files[CSVFile], err = runsCSV(records); err != nil {
		return nil, err
	}
	f := Filters{Drill: opts.Filter.Drill}
	if !opts.Filter.Since.IsZero() {
		f.Since = opts.Filter.Since.UTC().Format(time.RFC3339)
	}
	if !opts.Filter.Until.IsZero() {
		f.Until = opts.Filter.Until.UTC().Format(time.RFC3339)
	}
	if files[ReportFile], err = renderReport(records, f, opts.Now, opts.Version); err != nil {
		return nil, err
	}
	m := &Manifest{Tool: "drill", ToolVersion: opts.Version, GeneratedAt: opts.Now.UTC().Truncate(time.Second), Filters: f,
		Runs: len(sealed), ChainAnchors: anchors, Files: map[string]string{}, Signed: opts.Key != nil, Altered: altered}
	if pub := store.SealingPublicKey(); pub != nil {
		m.SealingPublicKey, m.SealingKeyID = string(PublicKeyPEM(pub)), drills.KeyID(pub)
	}
	for name, b := range files {
		m.Files[name] = sha256Hex(b)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	files[ManifestFile] = append(manifest, '\n')
	if opts.Key != nil {
		sig := ed25519.Sign(opts.Key, files[ManifestFile])
		files[SignatureFile] = []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
	}
	return m, writeZip(w, files, opts.Now)
}

type decoded struct {
	File RunFile
	Rec  drills.SealedRecord
}

func runFileName(id int64) string { return runsDir + strconv.FormatInt(id, 10) + ".json" }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func writeZip(w io.Writer, files map[string][]byte, at time.Time) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	zw := zip.NewWriter(w)
	for _, n := range names {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: at.UTC()})
		if err != nil {
			return err
		}
		if _, err := fw.Write(files[n]); err != nil {
			return err
		}
	}
	return zw.Close()
}

var csvHeader = []string{"id", "drill", "status", "reason", "trigger", "triggered_by", "started_at", "finished_at",
	"rto_seconds", "rto_objective_seconds", "rto_met", "rpo_seconds", "rpo_objective_seconds", "rpo_met", "data_rpo_seconds",
	"backup_id", "backup_created_at", "target_type", "target_id", "target_torn_down_at", "checks_passed", "checks_total",
	"error", "signoffs", "chain_hash"}

func runsCSV(records []decoded) ([]byte, error) {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	if err := cw.Write(csvHeader); err != nil {
		return nil, err
	}
	for _, d := range records {
		r := d.Rec.Run
		passed := 0
		for _, c := range r.Checks {
			if c.Passed {
				passed++
			}
		}
		var backupID, backupAt, tType, tID, tDown string
		if r.Backup != nil {
			backupID, backupAt = r.Backup.ID, r.Backup.CreatedAt
		}
		if r.Target != nil {
			tType, tID, tDown = r.Target.Type, r.Target.ID, str(r.Target.TornDownAt)
		}
		row := []string{strconv.FormatInt(r.ID, 10), r.Drill, string(r.Status), string(r.Reason), r.Trigger, r.TriggeredBy,
			str(r.StartedAt), str(r.FinishedAt), num(r.RTOSeconds), num(r.Objectives.RTOSeconds), boolean(r.Objectives.RTOMet),
			num(r.RPOSeconds), num(r.Objectives.RPOSeconds), boolean(r.Objectives.RPOMet), num(r.DataRPOSeconds),
			backupID, backupAt, tType, tID, tDown, strconv.Itoa(passed), strconv.Itoa(len(r.Checks)),
			str(r.Error), strconv.Itoa(len(d.File.Signoffs)), d.File.ChainHash}
		if err := cw.Write(row); err != nil {
			return nil, err
		}
	}
	cw.Flush()
	return buf.Bytes(), cw.Error()
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func num(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

func boolean(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}
