// Package fakerds is an RDS Query API emulator backed by real PostgreSQL,
// for tests and demos. It speaks the actions drill uses over HTTP
// (form-encoded POST, XML responses, AWS error envelopes); every restore
// creates a real PostgreSQL cluster (drills/local) loaded from a pg_dump
// archive that stands for the source instance's data.
package fakerds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"drill/drills"
	"drill/drills/local"
	"drill/drills/pgdump"
)

// Account and region in ARNs.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// Server is the emulator. Register sources with AddSource before serving.
type Server struct {
	// Dir holds the clusters of restored instances.
	Dir string
	// CreateDelay is how long a restore stays "creating" at least.
	CreateDelay time.Duration
	// ThrottleRate is the fraction of requests answered with Throttling.
	ThrottleRate float64
	Logger       *slog.Logger

	mu             sync.Mutex
	sources        map[string]*source
	instances      map[string]*instance
	clusterSources map[string]*clusterSource
	clusters       map[string]*dbCluster
	bin            local.Binaries
	runAs          local.RunAs
	wg             sync.WaitGroup
	ca             *authority
}

// CAPEM is the certificate authority of the instances' certificates (the
// emulator's "RDS CA bundle").
func (s *Server) CAPEM() []byte { return s.ca.pem }

// source is a production instance: untagged, available, with one
// automated snapshot and a restorable window.
type source struct {
	id          string
	dump        drills.Backup
	snapshotID  string
	restorable  time.Time
	createdTime time.Time
}

// instance is a restored instance backed by a real cluster.
type instance struct {
	id, status, class, subnetGroup string
	securityGroups                 []string
	tags                           []tag
	public, multiAZ, deletionProt  bool
	backupRetention                int
	created                        time.Time
	cluster                        *local.Cluster
	database                       string
	engineVersion                  string
	cancel                         context.CancelFunc
	// dbCluster names the Aurora cluster of an instance created in one:
	// it has no PostgreSQL of its own and serves its cluster's.
	dbCluster string
}

type tag struct{ Key, Value string }

// New returns an emulator whose clusters live under dir.
func New(dir string) (*Server, error) {
	bin, err := local.FindBinaries()
	if err != nil {
		return nil, err
	}
	runAs, err := local.LookupRunAs("")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil { // the clusters' OS user must pass through
		return nil, err
	}
	ca, err := newAuthority()
	if err != nil {
		return nil, err
	}
	return &Server{Dir: dir, sources: map[string]*source{}, instances: map[string]*instance{},
		clusterSources: map[string]*clusterSource{}, clusters: map[string]*dbCluster{}, bin: bin, runAs: runAs,
		Logger: slog.New(slog.DiscardHandler), ca: ca}, nil
}

// AddSource registers a source instance whose data is the dump at path;
// its automated snapshot dates from the dump's creation time.
func (s *Server) AddSource(ctx context.Context, id, path string) error {
	src, err := pgdump.NewSource(ctx, pgdump.SourceConfig{Location: path, PGRestore: s.bin.Path("pg_restore")})
	if err != nil {
		return err
	}
	b, err := src.Latest(ctx)
	if err != nil {
		return fmt.Errorf("source %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources[id] = &source{id: id, dump: b, snapshotID: "rds:" + id + "-" + b.CreatedAt.UTC().Format("2006-01-02-15-04"),
		restorable: time.Now().UTC().Add(-5 * time.Minute), createdTime: b.CreatedAt.Add(-30 * 24 * time.Hour)}
	return nil
}

// Instances lists the ids of restored instances that exist.
func (s *Server) Instances() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := []string{}
	for id := range s.instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Password returns the master password last set on an instance (tests
// assert it never leaks).
func (s *Server) Password(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.instances[id]; in != nil && in.cluster != nil {
		return in.cluster.Password
	}
	return ""
}

// Close deletes every restored instance and waits for the work to end.
func (s *Server) Close() {
	s.mu.Lock()
	for _, in := range s.instances {
		if in.dbCluster == "" {
			s.deleteLocked(in)
		}
	}
	for _, c := range s.clusters {
		if c.status != "deleting" {
			s.deleteClusterLocked(c)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func arn(id string) string { return "arn:aws:rds:" + Region + ":" + Account + ":db:" + id }

// ServeHTTP answers one Query API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	action := r.Form.Get("Action")
	if s.ThrottleRate > 0 && randFloat() < s.ThrottleRate {
		writeError(w, http.StatusBadRequest, "Throttling", "Rate exceeded")
		return
	}
	s.Logger.Debug("request", "action", action)
	var resp any
	var err *apiError
	switch action {
	case "DescribeDBInstances":
		resp, err = s.describeInstances(r.Form)
	case "DescribeDBSnapshots":
		resp, err = s.describeSnapshots(r.Form)
	case "RestoreDBInstanceFromDBSnapshot":
		resp, err = s.restoreFromSnapshot(r.Form)
	case "RestoreDBInstanceToPointInTime":
		resp, err = s.restoreToPointInTime(r.Form)
	case "ModifyDBInstance":
		resp, err = s.modify(r.Form)
	case "DeleteDBInstance":
		resp, err = s.delete(r.Form)
	case "AddTagsToResource":
		resp, err = s.addTags(r.Form)
	case "ListTagsForResource":
		resp, err = s.listTags(r.Form)
	case "DescribeDBClusters":
		resp, err = s.describeClusters(r.Form)
	case "DescribeDBClusterSnapshots":
		resp, err = s.describeClusterSnapshots(r.Form)
	case "RestoreDBClusterFromSnapshot":
		resp, err = s.restoreClusterFromSnapshot(r.Form)
	case "RestoreDBClusterToPointInTime":
		resp, err = s.restoreClusterToPointInTime(r.Form)
	case "ModifyDBCluster":
		resp, err = s.modifyCluster(r.Form)
	case "DeleteDBCluster":
		resp, err = s.deleteCluster(r.Form)
	case "CreateDBInstance":
		resp, err = s.createInstance(r.Form)
	default:
		err = &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("action %q is not supported by this emulator", action)}
	}
	if err != nil {
		writeError(w, err.status, err.code, err.msg)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	out, _ := xml.Marshal(resp)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

type apiError struct {
	status    int
	code, msg string
}

func notFound(code, format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, code, fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	out, _ := xml.Marshal(errorResponse{Type: "Sender", Code: code, Message: msg, RequestID: requestID()})
	_, _ = w.Write(out)
}

func requestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randFloat() float64 {
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<53))
	return float64(n.Int64()) / float64(1<<53)
}

// list reads Name.Member.1, Name.Member.2, … from a form.
func list(form map[string][]string, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func tagsOf(form map[string][]string) []tag {
	var out []tag
	for i := 1; ; i++ {
		k, ok := form["Tags.Tag."+strconv.Itoa(i)+".Key"]
		if !ok {
			return out
		}
		v := form["Tags.Tag."+strconv.Itoa(i)+".Value"]
		t := tag{Key: k[0]}
		if len(v) > 0 {
			t.Value = v[0]
		}
		out = append(out, t)
	}
}

func get(form map[string][]string, key string) string {
	if v := form[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// paginate applies Marker (an offset) and MaxRecords (default 100).
func paginate[T any](items []T, form map[string][]string) ([]T, string) {
	start, _ := strconv.Atoi(get(form, "Marker"))
	max, _ := strconv.Atoi(get(form, "MaxRecords"))
	if max <= 0 || max > 100 {
		max = 100
	}
	if start > len(items) {
		start = len(items)
	}
	end := min(start+max, len(items))
	marker := ""
	if end < len(items) {
		marker = strconv.Itoa(end)
	}
	return items[start:end], marker
}

func validID(id string) bool {
	if id == "" || len(id) > 63 || strings.Contains(id, "--") || strings.HasSuffix(id, "-") {
		return false
	}
	for i, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r >= 'A' && r <= 'Z') || (i == 0 && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')) {
			return false
		}
	}
	return true
}
