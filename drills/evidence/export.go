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
	"slices"
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
	// Scheduled are the drills of the config with a schedule: each is
	// covered period by period, runs or not. Drills in the bundle with a
	// schedule in their newest record are covered too.
	Scheduled []ScheduledDrill
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
	bd := &bundle{files: map[string][]byte{}}
	if err := bd.addSealed(ctx, store, sealed); err != nil {
		return nil, err
	}
	if err := bd.addUnsealed(ctx, store, opts.Filter); err != nil {
		return nil, err
	}
	if err := bd.addLogs(ctx, store, sealed); err != nil {
		return nil, err
	}
	if bd.files[CSVFile], err = runsCSV(bd.records); err != nil {
		return nil, err
	}
	m := newManifest(opts, len(sealed), anchors, bd.altered)
	firsts, err := store.FirstRuns(ctx)
	if err != nil {
		return nil, err
	}
	if m.Coverage, err = CoverageOf(scheduledDrills(opts, bd.records, firsts), runsOf(bd.records), opts.Filter.Since, opts.Filter.Until, opts.Now); err != nil {
		return nil, err
	}
	m.Controls = controlsOf(bd.records)
	if bd.files[ReportFile], err = renderReport(bd.records, m, opts.Now); err != nil {
		return nil, err
	}
	if pub := store.SealingPublicKey(); pub != nil {
		m.SealingPublicKey, m.SealingKeyID = string(PublicKeyPEM(pub)), drills.KeyID(pub)
		for _, prev := range store.PreviousSealingPubs {
			m.SealingPreviousPublicKeys = append(m.SealingPreviousPublicKeys, string(PublicKeyPEM(prev)))
		}
	}
	if err := bd.addManifest(m, opts.Key); err != nil {
		return nil, err
	}
	return m, writeZip(w, bd.files, opts.Now)
}

// bundle is an evidence bundle being put together: its files by name, the
// sealed records they hold, and the runs whose rows changed since.
type bundle struct {
	files   map[string][]byte
	records []decoded
	altered []AlteredRun
}

// addSealed adds a file per sealed run, and its record.
func (bd *bundle) addSealed(ctx context.Context, store *statedb.Store, sealed []statedb.Sealed) error {
	for _, s := range sealed {
		// The bundle holds sealed records; a row changed since is named.
		run, err := store.Run(ctx, s.ID)
		if err != nil {
			return err
		}
		if st := run.Seal; st != nil && st.Integrity == drills.IntegrityAltered {
			bd.altered = append(bd.altered, AlteredRun{ID: s.ID, Drill: s.Drill, Problem: st.Problem})
		}
		var rec drills.SealedRecord
		if err := json.Unmarshal(s.Record, &rec); err != nil {
			return fmt.Errorf("run %d: sealed record: %w", s.ID, err)
		}
		rf := RunFile{ID: s.ID, Drill: s.Drill, Record: s.Record, PrevHash: s.PrevHash, ChainHash: s.ChainHash, Signoffs: s.Signoffs,
			Seal: s.Seal, SealKeyID: s.SealKeyID, TargetAfterSeal: targetAfterSeal(rec.Run.Target, run.JSON().Target)}
		if rf.Signoffs == nil {
			rf.Signoffs = []drills.Signoff{}
		}
		b, err := json.MarshalIndent(rf, "", "  ")
		if err != nil {
			return err
		}
		bd.files[runFileName(s.ID)] = append(b, '\n')
		bd.records = append(bd.records, decoded{File: rf, Rec: rec})
	}
	return nil
}

// addUnsealed names the altered runs among the finished ones the bundle
// has no sealed record of.
func (bd *bundle) addUnsealed(ctx context.Context, store *statedb.Store, filter statedb.SealedFilter) error {
	// A finished run without a sealed record after one with: its record
	// was removed, and the bundle says so rather than leave it out unseen.
	unsealed, err := store.UnsealedFinished(ctx, filter)
	if err != nil {
		return err
	}
	for _, id := range unsealed {
		run, err := store.Run(ctx, id)
		if err != nil {
			return err
		}
		if st := run.Seal; st != nil && st.Integrity == drills.IntegrityAltered {
			bd.altered = append(bd.altered, AlteredRun{ID: id, Drill: run.Drill, Problem: st.Problem})
		}
	}
	return nil
}

// addLogs adds the restore logs of the sealed runs whose records hold
// their digest.
func (bd *bundle) addLogs(ctx context.Context, store *statedb.Store, sealed []statedb.Sealed) error {
	ids := make([]int64, len(sealed))
	for i, s := range sealed {
		ids[i] = s.ID
	}
	logs, err := store.RestoreLogs(ctx, ids)
	if err != nil {
		return err
	}
	vouched := map[int64]bool{}
	for _, d := range bd.records {
		vouched[d.Rec.Run.ID] = d.Rec.Run.RestoreLogSHA256 != ""
	}
	for id, log := range logs {
		if vouched[id] { // a log its sealed record has no digest of is not evidence
			bd.files[LogFileName(id)] = []byte(log)
		}
	}
	return nil
}

// newManifest starts the manifest of a bundle of n sealed runs: the
// filters, the chain anchors, the altered runs and who signs it.
func newManifest(opts ExportOpts, n int, anchors map[string]string, altered []AlteredRun) *Manifest {
	f := Filters{Drill: opts.Filter.Drill}
	if !opts.Filter.Since.IsZero() {
		f.Since = opts.Filter.Since.UTC().Format(time.RFC3339)
	}
	if !opts.Filter.Until.IsZero() {
		f.Until = opts.Filter.Until.UTC().Format(time.RFC3339)
	}
	m := &Manifest{Tool: "drill", ToolVersion: opts.Version, GeneratedAt: opts.Now.UTC().Truncate(time.Second), Filters: f,
		Runs: n, ChainAnchors: anchors, Files: map[string]string{}, Signed: opts.Key != nil, Altered: altered}
	if opts.Key != nil {
		m.SigningKeyID = drills.KeyID(opts.Key.Public().(ed25519.PublicKey))
	}
	return m
}

// addManifest adds the manifest, with the digest of every other file, and
// its signature by key when there is one.
func (bd *bundle) addManifest(m *Manifest, key ed25519.PrivateKey) error {
	for name, b := range bd.files {
		m.Files[name] = sha256Hex(b)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	bd.files[ManifestFile] = append(manifest, '\n')
	if key != nil {
		sig := ed25519.Sign(key, bd.files[ManifestFile])
		bd.files[SignatureFile] = []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
	}
	return nil
}

// targetAfterSeal is now when the instance's state or teardown time
// changed since the run was sealed, else nil.
func targetAfterSeal(sealed, now *drills.TargetJSON) *drills.TargetJSON {
	if now == nil || sealed != nil && sealed.State == now.State && str(sealed.TornDownAt) == str(now.TornDownAt) {
		return nil
	}
	return now
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
		row := []string{strconv.FormatInt(r.ID, 10), r.Drill, string(r.Status), string(r.Reason), string(r.Trigger), r.TriggeredBy,
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

// scheduledDrills are the drills to cover: those of the config with a
// schedule, and those in the bundle whose newest record has one; each
// since its first run (for a drill never run: the export's start).
func scheduledDrills(opts ExportOpts, records []decoded, firsts map[string]time.Time) []ScheduledDrill {
	byName := map[string]ScheduledDrill{}
	for _, d := range records { // in id order: the newest record wins
		p := d.Rec.Policy
		if p.Schedule != "" && (opts.Filter.Drill == "" || opts.Filter.Drill == d.Rec.Run.Drill) {
			byName[d.Rec.Run.Drill] = ScheduledDrill{Name: d.Rec.Run.Drill, Schedule: p.Schedule, Timezone: p.ScheduleTimezone}
		}
	}
	for _, s := range opts.Scheduled {
		if s.Schedule != "" && (opts.Filter.Drill == "" || opts.Filter.Drill == s.Name) {
			byName[s.Name] = s
		}
	}
	out := make([]ScheduledDrill, 0, len(byName))
	for name, s := range byName {
		s.Since = firsts[name]
		if s.Since.IsZero() {
			s.Since = opts.Filter.Since
		}
		out = append(out, s)
	}
	return out
}

// runsOf are the runs that evidence drills: all but drill init's.
func runsOf(records []decoded) []drills.RunJSON {
	out := make([]drills.RunJSON, 0, len(records))
	for _, d := range records {
		if d.Rec.Run.Trigger != drills.TriggerInit {
			out = append(out, d.Rec.Run)
		}
	}
	return out
}

// controlsOf lists each control the bundle's runs evidence, with them.
func controlsOf(records []decoded) []ControlEvidence {
	byID := map[string]*ControlEvidence{}
	var order []string
	for _, d := range records {
		if d.Rec.Run.Trigger == drills.TriggerInit {
			continue
		}
		for _, id := range d.Rec.Policy.ControlsOf() {
			c := drills.ControlOf(id)
			e := byID[c.ID]
			if e == nil {
				e = &ControlEvidence{Control: c, Runs: []int64{}, Passed: []int64{}}
				byID[c.ID] = e
				order = append(order, c.ID)
			}
			e.Runs = append(e.Runs, d.Rec.Run.ID)
			if d.Rec.Run.Status == drills.StatusPassed {
				e.Passed = append(e.Passed, d.Rec.Run.ID)
			}
		}
	}
	out := make([]ControlEvidence, 0, len(order))
	for _, id := range order {
		e := byID[id]
		slices.Sort(e.Runs)
		slices.Sort(e.Passed)
		out = append(out, *e)
	}
	return out
}
