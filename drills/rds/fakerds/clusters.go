package fakerds

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"drill/drills/local"
	"drill/drills/pgdump"

	"github.com/jackc/pgx/v5"
)

// Aurora PostgreSQL: source clusters with one automated cluster snapshot
// and a point-in-time window; restored clusters backed by a real
// PostgreSQL cluster, reachable once an instance is created in them.

const auroraEngine = "aurora-postgresql"

// clusterSource is a production Aurora cluster: untagged, available.
type clusterSource struct {
	id          string
	source      // its data: a dump, its snapshot id and restorable window
	createdTime time.Time
}

// dbCluster is a restored cluster.
type dbCluster struct {
	id, status, subnetGroup string
	securityGroups          []string
	tags                    []tag
	deletionProt            bool
	created                 time.Time
	members                 []string
	cluster                 *local.Cluster
	database                string
	cancel                  context.CancelFunc
}

func clusterARN(id string) string { return "arn:aws:rds:" + Region + ":" + Account + ":cluster:" + id }

// AddClusterSource registers a source Aurora cluster whose data is the
// dump at path; its automated cluster snapshot dates from the dump.
func (s *Server) AddClusterSource(ctx context.Context, id, path string) error {
	src, err := pgdump.NewSource(ctx, pgdump.SourceConfig{Location: path, PGRestore: s.bin.Path("pg_restore")})
	if err != nil {
		return err
	}
	b, err := src.Latest(ctx)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusterSources[id] = &clusterSource{id: id, createdTime: b.CreatedAt.Add(-30 * 24 * time.Hour),
		source: source{id: id, dump: b, snapshotID: "rds:" + id + "-" + b.CreatedAt.UTC().Format("2006-01-02-15-04"),
			restorable: time.Now().UTC().Add(-5 * time.Minute)}}
	return nil
}

// Clusters lists the ids of restored clusters that exist.
func (s *Server) Clusters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := []string{}
	for id := range s.clusters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ClusterPassword returns the master password last set on a cluster.
func (s *Server) ClusterPassword(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clusters[id]; c != nil {
		return c.cluster.Password
	}
	return ""
}

type xmlMember struct {
	DBInstanceIdentifier string `xml:"DBInstanceIdentifier"`
	IsClusterWriter      bool   `xml:"IsClusterWriter"`
}

type xmlCluster struct {
	DBClusterIdentifier   string      `xml:"DBClusterIdentifier"`
	DBClusterArn          string      `xml:"DBClusterArn"`
	Status                string      `xml:"Status"`
	Engine                string      `xml:"Engine"`
	EngineVersion         string      `xml:"EngineVersion"`
	MasterUsername        string      `xml:"MasterUsername"`
	Endpoint              string      `xml:"Endpoint,omitempty"`
	Port                  int         `xml:"Port,omitempty"`
	ClusterCreateTime     string      `xml:"ClusterCreateTime,omitempty"`
	LatestRestorableTime  string      `xml:"LatestRestorableTime,omitempty"`
	StorageEncrypted      bool        `xml:"StorageEncrypted"`
	DeletionProtection    bool        `xml:"DeletionProtection"`
	BackupRetentionPeriod int         `xml:"BackupRetentionPeriod"`
	DBSubnetGroup         string      `xml:"DBSubnetGroup,omitempty"`
	VpcSecurityGroups     []xmlSG     `xml:"VpcSecurityGroups>VpcSecurityGroupMembership"`
	Members               []xmlMember `xml:"DBClusterMembers>DBClusterMember"`
	TagList               []xmlTag    `xml:"TagList>Tag"`
}

type xmlClusterSnapshot struct {
	DBClusterSnapshotIdentifier string `xml:"DBClusterSnapshotIdentifier"`
	DBClusterSnapshotArn        string `xml:"DBClusterSnapshotArn"`
	DBClusterIdentifier         string `xml:"DBClusterIdentifier"`
	SnapshotCreateTime          string `xml:"SnapshotCreateTime"`
	Status                      string `xml:"Status"`
	SnapshotType                string `xml:"SnapshotType"`
	Engine                      string `xml:"Engine"`
	EngineVersion               string `xml:"EngineVersion"`
	StorageEncrypted            bool   `xml:"StorageEncrypted"`
}

type describeClustersResponse struct {
	XMLName   xml.Name     `xml:"DescribeDBClustersResponse"`
	NS        string       `xml:"xmlns,attr"`
	Clusters  []xmlCluster `xml:"DescribeDBClustersResult>DBClusters>DBCluster"`
	Marker    string       `xml:"DescribeDBClustersResult>Marker,omitempty"`
	RequestID string       `xml:"ResponseMetadata>RequestId"`
}

type describeClusterSnapshotsResponse struct {
	XMLName   xml.Name             `xml:"DescribeDBClusterSnapshotsResponse"`
	NS        string               `xml:"xmlns,attr"`
	Snapshots []xmlClusterSnapshot `xml:"DescribeDBClusterSnapshotsResult>DBClusterSnapshots>DBClusterSnapshot"`
	Marker    string               `xml:"DescribeDBClusterSnapshotsResult>Marker,omitempty"`
	RequestID string               `xml:"ResponseMetadata>RequestId"`
}

// clusterResponse is the shape of RestoreDBCluster*, ModifyDBCluster and
// DeleteDBCluster responses.
type clusterResponse struct {
	XMLName   xml.Name
	NS        string        `xml:"xmlns,attr"`
	Result    clusterResult `xml:""`
	RequestID string        `xml:"ResponseMetadata>RequestId"`
}

type clusterResult struct {
	XMLName xml.Name
	Cluster xmlCluster `xml:"DBCluster"`
}

func clusterResp(action string, c xmlCluster) clusterResponse {
	return clusterResponse{XMLName: xml.Name{Local: action + "Response"}, NS: ns,
		Result: clusterResult{XMLName: xml.Name{Local: action + "Result"}, Cluster: c}, RequestID: requestID()}
}

func (s *Server) clusterSourceXML(src *clusterSource) xmlCluster {
	return xmlCluster{DBClusterIdentifier: src.id, DBClusterArn: clusterARN(src.id), Status: "available", Engine: auroraEngine,
		EngineVersion: engineVersion, MasterUsername: "postgres", Endpoint: src.id + ".cluster.production.invalid", Port: 5432,
		ClusterCreateTime: ts(src.createdTime), LatestRestorableTime: ts(src.restorable), StorageEncrypted: true, BackupRetentionPeriod: 7,
		Members: []xmlMember{{DBInstanceIdentifier: src.id + "-1", IsClusterWriter: true}}}
}

func (s *Server) clusterXML(c *dbCluster) xmlCluster {
	x := xmlCluster{DBClusterIdentifier: c.id, DBClusterArn: clusterARN(c.id), Status: c.status, Engine: auroraEngine,
		EngineVersion: engineVersion, MasterUsername: "postgres", ClusterCreateTime: ts(c.created), StorageEncrypted: true,
		DeletionProtection: c.deletionProt, BackupRetentionPeriod: 1, DBSubnetGroup: c.subnetGroup}
	if c.status == "available" || c.status == "resetting-master-credentials" {
		x.Endpoint, x.Port = "127.0.0.1", c.cluster.Port
	}
	for _, sg := range c.securityGroups {
		x.VpcSecurityGroups = append(x.VpcSecurityGroups, xmlSG{VpcSecurityGroupID: sg, Status: "active"})
	}
	for i, m := range c.members {
		x.Members = append(x.Members, xmlMember{DBInstanceIdentifier: m, IsClusterWriter: i == 0})
	}
	for _, t := range c.tags {
		x.TagList = append(x.TagList, xmlTag(t))
	}
	return x
}

func (s *Server) describeClusters(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := get(form, "DBClusterIdentifier")
	var all []xmlCluster
	for _, src := range s.clusterSources {
		all = append(all, s.clusterSourceXML(src))
	}
	for _, c := range s.clusters {
		all = append(all, s.clusterXML(c))
	}
	page, marker, aerr := pick(all, id, func(x xmlCluster) string { return x.DBClusterIdentifier }, form,
		notFound("DBClusterNotFoundFault", "DBCluster %s not found.", id))
	if aerr != nil {
		return nil, aerr
	}
	return describeClustersResponse{NS: ns, Clusters: page, Marker: marker, RequestID: requestID()}, nil
}

func (s *Server) describeClusterSnapshots(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, snapID, typ := get(form, "DBClusterIdentifier"), get(form, "DBClusterSnapshotIdentifier"), get(form, "SnapshotType")
	var out []xmlClusterSnapshot
	for _, src := range s.clusterSources {
		if (id != "" && id != src.id) || (snapID != "" && snapID != src.snapshotID) || (typ != "" && typ != "automated") {
			continue
		}
		out = append(out, xmlClusterSnapshot{DBClusterSnapshotIdentifier: src.snapshotID,
			DBClusterSnapshotArn: "arn:aws:rds:" + Region + ":" + Account + ":cluster-snapshot:" + src.snapshotID,
			DBClusterIdentifier:  src.id, SnapshotCreateTime: ts(src.dump.CreatedAt), Status: "available", SnapshotType: "automated",
			Engine: auroraEngine, EngineVersion: engineVersion, StorageEncrypted: true})
	}
	if snapID != "" && len(out) == 0 {
		return nil, notFound("DBClusterSnapshotNotFoundFault", "DBClusterSnapshot %s not found.", snapID)
	}
	// pages follow one order, whatever the map's: a marker means the same
	// place from one call to the next
	sort.Slice(out, func(i, j int) bool { return out[i].DBClusterSnapshotIdentifier < out[j].DBClusterSnapshotIdentifier })
	page, marker := paginate(out, form)
	return describeClusterSnapshotsResponse{NS: ns, Snapshots: page, Marker: marker, RequestID: requestID()}, nil
}

func (s *Server) restoreClusterFromSnapshot(form map[string][]string) (any, *apiError) {
	snapID := get(form, "SnapshotIdentifier")
	s.mu.Lock()
	var src *clusterSource
	for _, c := range s.clusterSources {
		if c.snapshotID == snapID || clusterSnapshotARN(c.snapshotID) == snapID {
			src = c
		}
	}
	s.mu.Unlock()
	if src == nil {
		return nil, notFound("DBClusterSnapshotNotFoundFault", "DBClusterSnapshot %s not found.", snapID)
	}
	return s.startClusterRestore("RestoreDBClusterFromSnapshot", src, form)
}

func clusterSnapshotARN(id string) string {
	return "arn:aws:rds:" + Region + ":" + Account + ":cluster-snapshot:" + id
}

func (s *Server) restoreClusterToPointInTime(form map[string][]string) (any, *apiError) {
	srcID := get(form, "SourceDBClusterIdentifier")
	s.mu.Lock()
	src := s.clusterSources[srcID]
	s.mu.Unlock()
	if src == nil {
		return nil, notFound("DBClusterNotFoundFault", "DBCluster %s not found.", srcID)
	}
	if get(form, "UseLatestRestorableTime") != "true" {
		at, err := time.Parse(time.RFC3339, get(form, "RestoreToTime"))
		if err != nil || at.After(src.restorable) || at.Before(src.createdTime) {
			return nil, badRequest("InvalidRestoreFault", "restore time must be between %s and the latest restorable time %s", ts(src.createdTime), ts(src.restorable))
		}
	}
	return s.startClusterRestore("RestoreDBClusterToPointInTime", src, form)
}

// startClusterRestore creates the cluster record ("creating") and builds
// its real PostgreSQL cluster in the background.
func (s *Server) startClusterRestore(action string, src *clusterSource, form map[string][]string) (any, *apiError) {
	id := get(form, "DBClusterIdentifier")
	if !validID(id) {
		return nil, badRequest("InvalidParameterValue", "DBClusterIdentifier %q is not a valid identifier", id)
	}
	if e := get(form, "Engine"); action == "RestoreDBClusterFromSnapshot" && e != auroraEngine {
		return nil, badRequest("InvalidParameterValue", "Engine %q: the snapshot's engine is %s", e, auroraEngine)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.clusters[id]; exists || s.clusterSources[id] != nil {
		return nil, badRequest("DBClusterAlreadyExistsFault", "DB Cluster already exists")
	}
	c := &dbCluster{id: id, status: "creating", subnetGroup: get(form, "DBSubnetGroupName"),
		securityGroups: list(form, "VpcSecurityGroupIds.VpcSecurityGroupId"), tags: tagsOf(form),
		deletionProt: get(form, "DeletionProtection") == "true", created: time.Now().UTC(), database: src.dump.Database}
	port, err := local.FreePort()
	if err != nil {
		return nil, &apiError{http.StatusInternalServerError, "InternalFailure", err.Error()}
	}
	c.cluster = &local.Cluster{Dir: filepath.Join(s.Dir, "cluster-"+id), Bin: s.bin, RunAs: s.runAs, Port: port, ListenTCP: true,
		Settings: instanceSettings(), Password: local.RandomPassword()}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	s.clusters[id] = c
	s.wg.Add(1)
	go s.materializeThen(ctx, c.cluster, c.database, src.dump, func(err error) {
		switch {
		case err != nil && c.status == "creating":
			s.Logger.Warn("cluster restore failed", "cluster", c.id, "error", err.Error())
			c.status = "inaccessible-encryption-credentials-recoverable"
		case err == nil && c.status == "creating":
			c.status = "available"
		}
	})
	return clusterResp(action, s.clusterXML(c)), nil
}

func (s *Server) lookupCluster(id string) (*dbCluster, *apiError) {
	c := s.clusters[id]
	if c == nil {
		if s.clusterSources[id] != nil {
			return nil, badRequest("InvalidParameterCombination", "the emulator does not change source cluster %s", id)
		}
		return nil, notFound("DBClusterNotFoundFault", "DBCluster %s not found.", id)
	}
	return c, nil
}

func (s *Server) modifyCluster(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, aerr := s.lookupCluster(get(form, "DBClusterIdentifier"))
	if aerr != nil {
		return nil, aerr
	}
	if c.status != "available" {
		return nil, badRequest("InvalidDBClusterStateFault", "DBCluster %s is not in available state.", c.id)
	}
	if pw := get(form, "MasterUserPassword"); pw != "" {
		if err := setPassword(c.cluster, pw); err != nil {
			return nil, &apiError{http.StatusInternalServerError, "InternalFailure", err.Error()}
		}
	}
	return clusterResp("ModifyDBCluster", s.clusterXML(c)), nil
}

// setPassword sets the master user's password in a real cluster.
func setPassword(c *local.Cluster, pw string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SocketDSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// The password is a literal: ALTER ROLE takes no parameters.
	if _, err := conn.Exec(ctx, "alter role postgres password '"+strings.ReplaceAll(pw, "'", "''")+"'"); err != nil {
		return err
	}
	c.Password = pw
	return nil
}

func (s *Server) deleteCluster(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, aerr := s.lookupCluster(get(form, "DBClusterIdentifier"))
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case c.deletionProt:
		return nil, badRequest("InvalidParameterCombination", "Cannot delete protected Cluster, please disable deletion protection and try again.")
	case c.status == "deleting":
		return nil, badRequest("InvalidDBClusterStateFault", "Cluster %s is already being deleted.", c.id)
	case len(c.members) > 0:
		return nil, badRequest("InvalidDBClusterStateFault", "Cluster cannot be deleted, it still contains DB instances in non-deleting state.")
	case get(form, "SkipFinalSnapshot") != "true":
		return nil, badRequest("InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
	}
	x := s.clusterXML(c)
	s.deleteClusterLocked(c)
	x.Status = "deleting"
	return clusterResp("DeleteDBCluster", x), nil
}

// deleteClusterLocked moves a cluster to "deleting" and removes it.
func (s *Server) deleteClusterLocked(c *dbCluster) {
	c.status = "deleting"
	s.remove(c.cancel, c.cluster, s.deleteDelay(), func() { delete(s.clusters, c.id) })
}

// deleteDelay is how long a deleted cluster or member stays "deleting".
func (s *Server) deleteDelay() time.Duration { return min(s.CreateDelay/5, 2*time.Second) }

// createInstance creates an instance in a restored cluster: the cluster's
// data becomes reachable at the instance's endpoint once it is available.
func (s *Server) createInstance(form map[string][]string) (any, *apiError) {
	id, clusterID := get(form, "DBInstanceIdentifier"), get(form, "DBClusterIdentifier")
	if clusterID == "" {
		return nil, badRequest("InvalidParameterCombination", "the emulator creates instances in DB clusters only")
	}
	if !validID(id) {
		return nil, badRequest("InvalidParameterValue", "DBInstanceIdentifier %q is not a valid identifier", id)
	}
	if e := get(form, "Engine"); e != auroraEngine {
		return nil, badRequest("InvalidParameterCombination", "Engine %q does not match the cluster's engine %s", e, auroraEngine)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, aerr := s.lookupCluster(clusterID)
	if aerr != nil {
		return nil, aerr
	}
	if c.status != "available" {
		return nil, badRequest("InvalidDBClusterStateFault", "DBCluster %s is not in available state.", c.id)
	}
	if _, exists := s.instances[id]; exists || s.sources[id] != nil {
		return nil, badRequest("DBInstanceAlreadyExists", "DB instance already exists")
	}
	in := &instance{id: id, status: "creating", class: get(form, "DBInstanceClass"), tags: tagsOf(form),
		public: get(form, "PubliclyAccessible") == "true", created: time.Now().UTC(), engineVersion: engineVersion,
		subnetGroup: c.subnetGroup, securityGroups: c.securityGroups, dbCluster: c.id, cancel: func() {}}
	s.instances[id] = in
	c.members = append(c.members, id)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(s.CreateDelay)
		s.mu.Lock()
		defer s.mu.Unlock()
		if in.status == "creating" {
			in.status = "available"
		}
	}()
	return instanceResp("CreateDBInstance", s.instanceXML(in)), nil
}

// deleteMemberLocked removes a cluster's instance after deleteDelay.
func (s *Server) deleteMemberLocked(in *instance) {
	in.status = "deleting"
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(s.deleteDelay())
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.instances, in.id)
		if c := s.clusters[in.dbCluster]; c != nil {
			c.members = slices.DeleteFunc(c.members, func(m string) bool { return m == in.id })
		}
	}()
}

// memberEndpoint is the port of a cluster instance's endpoint (0 while
// its cluster is not reachable).
func (s *Server) memberEndpoint(in *instance) int {
	if c := s.clusters[in.dbCluster]; c != nil && c.cluster != nil && c.status != "deleting" {
		return c.cluster.Port
	}
	return 0
}

func (s *Server) clusterByARN(name string) (*dbCluster, bool, *apiError) {
	id, ok := strings.CutPrefix(name, "arn:aws:rds:"+Region+":"+Account+":cluster:")
	if !ok {
		return nil, false, nil
	}
	if s.clusterSources[id] != nil {
		return &dbCluster{id: id}, true, nil // sources are untagged
	}
	c, aerr := s.lookupCluster(id)
	return c, true, aerr
}
