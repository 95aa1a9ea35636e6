// Package barmancloud is the Source of physical backups made by
// barman-cloud-backup into S3: a base backup chosen by Barman's own
// metadata (barman-cloud-backup-list, and the stop time in its
// backup.info), restored by barman-cloud-restore into drill's throwaway
// cluster and brought to a point in time with barman-cloud-wal-restore.
// drill only reads the bucket.
package barmancloud

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"drill/drills"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/physical"
)

// SourceType is the source type of this package in drill.yaml.
const SourceType = "barman-cloud"

// Settings are the keys of a barman-cloud source in drill.yaml.
type Settings struct {
	// Location is the barman-cloud destination, s3://bucket/prefix.
	Location string `yaml:"location" json:"location"`
	// Server is the Barman server name.
	Server string `yaml:"server" json:"server"`
	// TargetTime is latest (all archived WAL) or an RFC 3339 time.
	TargetTime string `yaml:"target_time" json:"target_time,omitempty"`
	// Region and Endpoint override the AWS environment.
	Region   string `yaml:"region" json:"region,omitempty"`
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
}

func init() {
	drills.Register(drills.Backend{Kind: drills.KindSource, Type: SourceType,
		Settings: func() any { return &Settings{} }, NewSource: newFromSpec})
}

// Validate checks the settings and that the drill restores into a local target.
func (s Settings) Validate(spec *drills.Spec) []drills.SettingsProblem {
	var ps []drills.SettingsProblem
	if u, err := url.Parse(s.Location); s.Location == "" || err != nil || u.Scheme != "s3" || u.Host == "" {
		ps = append(ps, drills.SettingsProblem{Key: "location", Msg: "location must be the barman-cloud destination, s3://bucket/prefix"})
	}
	if s.Server == "" {
		ps = append(ps, drills.SettingsProblem{Msg: "missing required field server (the Barman server name)"})
	}
	ps = append(ps, physical.TargetTimeProblem(s.TargetTime)...)
	if spec.Target.Type != local.TargetType {
		ps = append(ps, drills.SettingsProblem{DrillKey: "target", Msg: "a barman-cloud source restores into a local target"})
	}
	return ps
}

// Describe says where the backups are.
func (s Settings) Describe() string { return s.Location + " server " + s.Server }

// Missing says when barman-cloud is not installed.
func (s Settings) Missing() string {
	return physical.ToolMissing("barman-cloud-restore", "barman-cli-cloud")
}

func newFromSpec(ctx context.Context, spec *drills.Spec) (drills.Source, error) {
	var s Settings
	if err := spec.Source.Decode(&s); err != nil {
		return nil, err
	}
	if m := s.Missing(); m != "" {
		return nil, errors.New(m)
	}
	target, err := physical.ParseTargetTime(s.TargetTime)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(s.Location)
	if err != nil {
		return nil, err
	}
	client, err := pgdump.NewS3Client(ctx, s.Region, s.Endpoint, s.Location)
	if err != nil {
		return nil, err
	}
	endpoint := s.Endpoint
	for _, v := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if endpoint == "" {
			endpoint = os.Getenv(v)
		}
	}
	list, err := physical.ListAs(spec)
	if err != nil {
		return nil, err
	}
	return &Source{s: s, target: target, client: client, endpoint: endpoint, list: list,
		bucket: u.Host, prefix: strings.Trim(u.Path, "/")}, nil
}

// Source lists a Barman server's backups in S3.
type Source struct {
	s        Settings
	target   time.Time
	client   *s3.Client
	endpoint string
	bucket   string
	prefix   string
	list     func(ctx context.Context, name string, args ...string) *exec.Cmd
}

// env is what the barman-cloud programs need from drill's environment:
// the AWS credentials and region (never anything else of drill's).
func (src *Source) env() []string {
	out := physical.Environ(awsVariable)
	if src.s.Region != "" {
		out = append(out, "AWS_DEFAULT_REGION="+src.s.Region, "AWS_REGION="+src.s.Region)
	}
	return out
}

// awsVariable names the variables of drill's environment the barman-cloud
// programs get: AWS credentials and region, nothing else of drill's.
func awsVariable(name string) bool {
	switch name {
	case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_CA_BUNDLE", "AWS_EC2_METADATA_DISABLED", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME":
		return true
	}
	return false
}

// cloudArgs are the options every barman-cloud program gets.
func (src *Source) cloudArgs() []string {
	if src.endpoint != "" {
		return []string{"--endpoint-url", src.endpoint}
	}
	return nil
}

type listed struct {
	BackupID    string              `json:"backup_id"`
	Status      string              `json:"status"`
	BeginWAL    string              `json:"begin_wal"`
	EndWAL      string              `json:"end_wal"`
	BeginXlog   string              `json:"begin_xlog"`
	EndXlog     string              `json:"end_xlog"`
	BeginTime   string              `json:"begin_time"`
	EndTime     string              `json:"end_time"`
	Version     int                 `json:"version"`
	Size        *int64              `json:"size"`
	Tablespaces [][]json.RawMessage `json:"tablespaces"`
	Error       *string             `json:"error"`
}

// tablespaceName is a tablespace name barman-cloud-restore may map:
// nothing that could leave the run's directory or split its NAME:LOCATION.
var tablespaceName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Latest chooses the base backup to restore by Barman's own metadata.
func (src *Source) Latest(ctx context.Context) (drills.Backup, error) {
	args := append(src.cloudArgs(), "--format", "json", "--", src.s.Location, src.s.Server)
	cmd := src.list(ctx, "barman-cloud-backup-list", args...)
	cmd.Env = append(cmd.Env, src.env()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return drills.Backup{}, fmt.Errorf("barman-cloud-backup-list %s %s: %w: %s", src.s.Location, src.s.Server, err, strings.TrimSpace(stderr.String()))
	}
	var list struct {
		Backups []listed `json:"backups_list"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return drills.Backup{}, fmt.Errorf("barman-cloud-backup-list: unreadable output: %w", err)
	}
	what := src.s.Location + " server " + src.s.Server
	if len(list.Backups) == 0 {
		return drills.Backup{}, fmt.Errorf("%w: %s has no backup (barman-cloud-backup-list lists none)", drills.ErrNoBackup, what)
	}
	byID := map[string]listed{}
	var bases []physical.Base
	for _, l := range list.Backups {
		byID[l.BackupID] = l
		base := physical.Base{Label: l.BackupID, StartLSN: l.BeginXlog, StopLSN: l.EndXlog, StartWAL: l.BeginWAL, StopWAL: l.EndWAL,
			Version: l.Version / 10000}
		if l.Size != nil {
			base.Size = *l.Size
		}
		switch {
		case l.Status != "DONE":
			base.Problem = "status " + l.Status
		case l.Error != nil && *l.Error != "":
			base.Problem = *l.Error
		default:
			// The list prints times without their zone: backup.info has them whole.
			if base.Start, base.Stop, err = src.times(ctx, l.BackupID); err != nil {
				return drills.Backup{}, err
			}
		}
		bases = append(bases, base)
	}
	chosen, sel, err := physical.Choose(what, bases, "", src.target)
	if err != nil {
		return drills.Backup{}, err
	}
	b := chosen.Record(src.s.Location+"/"+src.s.Server+"/"+chosen.Label, "barman-cloud", sel, map[string]string{"server": src.s.Server}, src.target)
	l := byID[chosen.Label]
	b.Physical = &physical.Backup{Version: chosen.Version, Target: src.target, Environ: src.env(),
		RestoreFunc: func(ctx context.Context, dirs drills.RestoreDirs, run drills.ToolRunner) error {
			args := src.cloudArgs()
			for _, ts := range l.Tablespaces { // [name, oid, location]
				var name string
				if len(ts) == 0 || json.Unmarshal(ts[0], &name) != nil || !tablespaceName.MatchString(name) {
					return fmt.Errorf("%w: backup %s has a tablespace named %s: drill maps only plain names (letters, digits, _) into the run's directory",
						local.ErrHostileBackup, chosen.Label, strconv.Quote(name))
				}
				args = append(args, "--tablespace", name+":"+path.Join(dirs.Tablespaces, name))
			}
			args = append(args, "--", src.s.Location, src.s.Server, chosen.Label, dirs.Data)
			_, err := run(ctx, src.env(), "barman-cloud-restore", args...)
			return err
		},
		Command: func(drills.RestoreDirs) string {
			var args []string
			for _, a := range append(src.cloudArgs(), "--", src.s.Location, src.s.Server) {
				args = append(args, physical.ShellQuote(a))
			}
			return "barman-cloud-wal-restore " + strings.Join(args, " ") + ` %f "%p"`
		},
		LastWALFunc: src.lastWAL,
	}
	return b, nil
}

// times reads a backup's start and stop time from its backup.info.
func (src *Source) times(ctx context.Context, id string) (start, stop time.Time, err error) {
	key := path.Join(src.prefix, src.s.Server, "base", id, "backup.info")
	out, err := src.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(key)})
	if err != nil {
		return start, stop, fmt.Errorf("read s3://%s/%s: %w", src.bucket, key, err)
	}
	defer out.Body.Close()
	sc := bufio.NewScanner(out.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		var t *time.Time
		switch k {
		case "begin_time":
			t = &start
		case "end_time":
			t = &stop
		default:
			continue
		}
		if *t, err = parseInfoTime(v); err != nil {
			return start, stop, fmt.Errorf("s3://%s/%s: %s: %w", src.bucket, key, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return start, stop, err
	}
	if stop.IsZero() {
		return start, stop, fmt.Errorf("s3://%s/%s has no end_time", src.bucket, key)
	}
	return start, stop, nil
}

// parseInfoTime reads a time as backup.info writes it: Python's
// isoformat with a space, microseconds and a zone offset.
func parseInfoTime(v string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07:00", "2006-01-02T15:04:05.999999-07:00"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time with a zone", v)
}

// lastWAL names the newest WAL segment under the server's wals/.
func (src *Source) lastWAL(ctx context.Context) (string, error) {
	prefix := path.Join(src.prefix, src.s.Server, "wals") + "/"
	newest := ""
	p := s3.NewListObjectsV2Paginator(src.client, &s3.ListObjectsV2Input{Bucket: aws.String(src.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", err
		}
		for _, o := range page.Contents {
			name := path.Base(aws.ToString(o.Key))
			if strings.Contains(name, ".partial") || strings.Contains(name, ".backup") {
				continue // not a whole segment
			}
			if i := strings.IndexByte(name, '.'); i >= 0 {
				name = name[:i] // .gz, .bz2, .snappy
			}
			if physical.IsSegment(name) && name > newest {
				newest = name
			}
		}
	}
	return newest, nil
}
