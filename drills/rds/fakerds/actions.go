package fakerds

import (
	"context"
	"encoding/xml"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/local"

	"github.com/jackc/pgx/v5"
)

const ns = "http://rds.amazonaws.com/doc/2014-10-31/"

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type xmlInstance struct {
	DBInstanceIdentifier  string   `xml:"DBInstanceIdentifier"`
	DBInstanceArn         string   `xml:"DBInstanceArn"`
	DBInstanceClass       string   `xml:"DBInstanceClass"`
	DBInstanceStatus      string   `xml:"DBInstanceStatus"`
	Engine                string   `xml:"Engine"`
	EngineVersion         string   `xml:"EngineVersion"`
	MasterUsername        string   `xml:"MasterUsername"`
	EndpointAddress       string   `xml:"Endpoint>Address,omitempty"`
	EndpointPort          int      `xml:"Endpoint>Port,omitempty"`
	InstanceCreateTime    string   `xml:"InstanceCreateTime,omitempty"`
	LatestRestorableTime  string   `xml:"LatestRestorableTime,omitempty"`
	PubliclyAccessible    bool     `xml:"PubliclyAccessible"`
	MultiAZ               bool     `xml:"MultiAZ"`
	StorageEncrypted      bool     `xml:"StorageEncrypted"`
	DeletionProtection    bool     `xml:"DeletionProtection"`
	BackupRetentionPeriod int      `xml:"BackupRetentionPeriod"`
	DBSubnetGroupName     string   `xml:"DBSubnetGroup>DBSubnetGroupName,omitempty"`
	DBClusterIdentifier   string   `xml:"DBClusterIdentifier,omitempty"`
	VpcSecurityGroups     []xmlSG  `xml:"VpcSecurityGroups>VpcSecurityGroupMembership"`
	TagList               []xmlTag `xml:"TagList>Tag"`
}

type xmlSG struct {
	VpcSecurityGroupID string `xml:"VpcSecurityGroupId"`
	Status             string `xml:"Status"`
}

type xmlSnapshot struct {
	DBSnapshotIdentifier string `xml:"DBSnapshotIdentifier"`
	DBSnapshotArn        string `xml:"DBSnapshotArn"`
	DBInstanceIdentifier string `xml:"DBInstanceIdentifier"`
	SnapshotCreateTime   string `xml:"SnapshotCreateTime"`
	Status               string `xml:"Status"`
	SnapshotType         string `xml:"SnapshotType"`
	Engine               string `xml:"Engine"`
	EngineVersion        string `xml:"EngineVersion"`
	Encrypted            bool   `xml:"Encrypted"`
}

type describeInstancesResponse struct {
	XMLName   xml.Name      `xml:"DescribeDBInstancesResponse"`
	NS        string        `xml:"xmlns,attr"`
	Instances []xmlInstance `xml:"DescribeDBInstancesResult>DBInstances>DBInstance"`
	Marker    string        `xml:"DescribeDBInstancesResult>Marker,omitempty"`
	RequestID string        `xml:"ResponseMetadata>RequestId"`
}

type describeSnapshotsResponse struct {
	XMLName   xml.Name      `xml:"DescribeDBSnapshotsResponse"`
	NS        string        `xml:"xmlns,attr"`
	Snapshots []xmlSnapshot `xml:"DescribeDBSnapshotsResult>DBSnapshots>DBSnapshot"`
	Marker    string        `xml:"DescribeDBSnapshotsResult>Marker,omitempty"`
	RequestID string        `xml:"ResponseMetadata>RequestId"`
}

// instanceResponse is the shape of Restore*, Modify and Delete responses.
type instanceResponse struct {
	XMLName   xml.Name
	NS        string     `xml:"xmlns,attr"`
	Result    instResult `xml:""`
	RequestID string     `xml:"ResponseMetadata>RequestId"`
}

type instResult struct {
	XMLName  xml.Name
	Instance xmlInstance `xml:"DBInstance"`
}

func instanceResp(action string, in xmlInstance) instanceResponse {
	return instanceResponse{XMLName: xml.Name{Local: action + "Response"}, NS: ns,
		Result: instResult{XMLName: xml.Name{Local: action + "Result"}, Instance: in}, RequestID: requestID()}
}

type listTagsResponse struct {
	XMLName   xml.Name `xml:"ListTagsForResourceResponse"`
	NS        string   `xml:"xmlns,attr"`
	Tags      []xmlTag `xml:"ListTagsForResourceResult>TagList>Tag"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

type emptyResponse struct {
	XMLName   xml.Name
	NS        string `xml:"xmlns,attr"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

const engineVersion = "15.7"

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) sourceXML(src *source) xmlInstance {
	return xmlInstance{DBInstanceIdentifier: src.id, DBInstanceArn: arn(src.id), DBInstanceClass: "db.r6g.large",
		DBInstanceStatus: "available", Engine: "postgres", EngineVersion: engineVersion, MasterUsername: "postgres",
		EndpointAddress: src.id + ".production.invalid", EndpointPort: 5432, InstanceCreateTime: ts(src.createdTime),
		LatestRestorableTime: ts(src.restorable), StorageEncrypted: true, MultiAZ: true, BackupRetentionPeriod: 7}
}

func (s *Server) instanceXML(in *instance) xmlInstance {
	x := xmlInstance{DBInstanceIdentifier: in.id, DBInstanceArn: arn(in.id), DBInstanceClass: in.class, DBInstanceStatus: in.status,
		Engine: "postgres", EngineVersion: in.engineVersion, MasterUsername: "postgres", InstanceCreateTime: ts(in.created),
		PubliclyAccessible: in.public, MultiAZ: in.multiAZ, StorageEncrypted: true, DeletionProtection: in.deletionProt,
		BackupRetentionPeriod: in.backupRetention, DBSubnetGroupName: in.subnetGroup}
	switch {
	case in.dbCluster != "":
		x.Engine, x.DBClusterIdentifier, x.BackupRetentionPeriod = auroraEngine, in.dbCluster, 1
		if port := s.memberEndpoint(in); in.status == "available" && port > 0 {
			x.EndpointAddress, x.EndpointPort = "127.0.0.1", port
		}
	case in.status == "available" || in.status == "modifying":
		x.EndpointAddress, x.EndpointPort = "127.0.0.1", in.cluster.Port
	}
	for _, sg := range in.securityGroups {
		x.VpcSecurityGroups = append(x.VpcSecurityGroups, xmlSG{VpcSecurityGroupID: sg, Status: "active"})
	}
	for _, t := range in.tags {
		x.TagList = append(x.TagList, xmlTag(t))
	}
	return x
}

func (s *Server) describeInstances(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := get(form, "DBInstanceIdentifier")
	var all []xmlInstance
	for _, src := range s.sources {
		all = append(all, s.sourceXML(src))
	}
	for _, in := range s.instances {
		all = append(all, s.instanceXML(in))
	}
	page, marker, aerr := pick(all, id, func(x xmlInstance) string { return x.DBInstanceIdentifier }, form,
		notFound("DBInstanceNotFound", "DBInstance %s not found.", id))
	if aerr != nil {
		return nil, aerr
	}
	return describeInstancesResponse{NS: ns, Instances: page, Marker: marker, RequestID: requestID()}, nil
}

// pick keeps the items whose id is id (all when id is ""), sorted by id,
// and pages them; an id naming none is notFound.
func pick[T any](items []T, id string, idOf func(T) string, form map[string][]string, notFound *apiError) ([]T, string, *apiError) {
	var kept []T
	for _, x := range items {
		if id == "" || idOf(x) == id {
			kept = append(kept, x)
		}
	}
	if id != "" && len(kept) == 0 {
		return nil, "", notFound
	}
	sort.Slice(kept, func(i, j int) bool { return idOf(kept[i]) < idOf(kept[j]) })
	page, marker := paginate(kept, form)
	return page, marker, nil
}

func (s *Server) describeSnapshots(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, snapID, typ := get(form, "DBInstanceIdentifier"), get(form, "DBSnapshotIdentifier"), get(form, "SnapshotType")
	var out []xmlSnapshot
	for _, src := range s.sources {
		if (id != "" && id != src.id) || (snapID != "" && snapID != src.snapshotID) || (typ != "" && typ != "automated") {
			continue
		}
		out = append(out, xmlSnapshot{DBSnapshotIdentifier: src.snapshotID, DBSnapshotArn: "arn:aws:rds:" + Region + ":" + Account + ":snapshot:" + src.snapshotID,
			DBInstanceIdentifier: src.id, SnapshotCreateTime: ts(src.dump.CreatedAt), Status: "available", SnapshotType: "automated",
			Engine: "postgres", EngineVersion: engineVersion, Encrypted: true})
	}
	if snapID != "" && len(out) == 0 {
		return nil, notFound("DBSnapshotNotFound", "DBSnapshot %s not found.", snapID)
	}
	page, marker := paginate(out, form)
	return describeSnapshotsResponse{NS: ns, Snapshots: page, Marker: marker, RequestID: requestID()}, nil
}

func (s *Server) restoreFromSnapshot(form map[string][]string) (any, *apiError) {
	snapID := get(form, "DBSnapshotIdentifier")
	s.mu.Lock()
	var src *source
	for _, c := range s.sources {
		if c.snapshotID == snapID {
			src = c
		}
	}
	s.mu.Unlock()
	if src == nil {
		return nil, notFound("DBSnapshotNotFound", "DBSnapshot %s not found.", snapID)
	}
	return s.startRestore("RestoreDBInstanceFromDBSnapshot", get(form, "DBInstanceIdentifier"), src, form)
}

func (s *Server) restoreToPointInTime(form map[string][]string) (any, *apiError) {
	srcID := get(form, "SourceDBInstanceIdentifier")
	s.mu.Lock()
	src := s.sources[srcID]
	s.mu.Unlock()
	if src == nil {
		return nil, notFound("DBInstanceNotFound", "DBInstance %s not found.", srcID)
	}
	if get(form, "UseLatestRestorableTime") != "true" {
		at, err := time.Parse(time.RFC3339, get(form, "RestoreTime"))
		if err != nil || at.After(src.restorable) || at.Before(src.createdTime) { // the window: as for clusters
			return nil, badRequest("InvalidRestoreFault", "restore time must be between %s and the latest restorable time %s", ts(src.createdTime), ts(src.restorable))
		}
	}
	return s.startRestore("RestoreDBInstanceToPointInTime", get(form, "TargetDBInstanceIdentifier"), src, form)
}

// startRestore creates the instance record ("creating") and builds its
// real cluster in the background.
func (s *Server) startRestore(action, id string, src *source, form map[string][]string) (any, *apiError) {
	if !validID(id) {
		return nil, badRequest("InvalidParameterValue", "DBInstanceIdentifier %q is not a valid identifier", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.instances[id]; exists || s.sources[id] != nil {
		return nil, badRequest("DBInstanceAlreadyExists", "DB instance already exists")
	}
	retention, _ := strconv.Atoi(get(form, "BackupRetentionPeriod"))
	in := &instance{id: id, status: "creating", class: get(form, "DBInstanceClass"), subnetGroup: get(form, "DBSubnetGroupName"),
		securityGroups: list(form, "VpcSecurityGroupIds.VpcSecurityGroupId"), tags: tagsOf(form),
		public: get(form, "PubliclyAccessible") == "true", multiAZ: get(form, "MultiAZ") == "true",
		deletionProt: get(form, "DeletionProtection") == "true", backupRetention: retention,
		created: time.Now().UTC(), database: src.dump.Database, engineVersion: engineVersion}
	if in.class == "" {
		in.class = "db.r6g.large"
	}
	port, err := local.FreePort()
	if err != nil {
		return nil, &apiError{http.StatusInternalServerError, "InternalFailure", err.Error()}
	}
	in.cluster = &local.Cluster{Dir: filepath.Join(s.Dir, id), Bin: s.bin, RunAs: s.runAs, Port: port, ListenTCP: true,
		Settings: instanceSettings(), Password: local.RandomPassword()}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	s.instances[id] = in
	s.wg.Add(1)
	go s.build(ctx, in, src)
	return instanceResp(action, s.instanceXML(in)), nil
}

// materialize makes a real cluster holding dump's data under database
// (default postgres), with a server certificate, and starts it.
func (s *Server) materialize(ctx context.Context, c *local.Cluster, database string, dump drills.Backup) error {
	if err := c.Init(ctx); err != nil {
		return err
	}
	if err := s.ca.writeCertificate(c); err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	db := database
	if db == "" {
		db = "postgres"
	}
	if db != "postgres" {
		conn, err := pgx.Connect(ctx, c.SocketDSN("postgres"))
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "create database "+pgx.Identifier{db}.Sanitize())
		conn.Close(context.Background())
		if err != nil {
			return err
		}
	}
	path, err := dump.Fetch(ctx, c.Dir, nil)
	if err != nil {
		return err
	}
	return local.RestoreArchive(ctx, s.bin, c.SocketDSN(db), dump.Format, path, 2, nil)
}

// build makes the cluster, restores the source's data under its own
// database name, and turns the instance available after CreateDelay.
func (s *Server) build(ctx context.Context, in *instance, src *source) {
	s.materializeThen(ctx, in.cluster, in.database, src.dump, func(err error) {
		switch {
		case err != nil && in.status == "creating":
			s.Logger.Warn("restore failed", "instance", in.id, "error", err.Error())
			in.status = "failed"
		case err == nil && in.status == "creating":
			in.status = "available"
		}
	})
}

// materializeThen materializes c, waits until CreateDelay has passed since
// it began, and calls done under the server's lock with the outcome. It
// runs in the background: call it as a goroutine counted in s.wg.
func (s *Server) materializeThen(ctx context.Context, c *local.Cluster, database string, dump drills.Backup, done func(error)) {
	defer s.wg.Done()
	start := time.Now()
	err := s.materialize(ctx, c, database, dump)
	if err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(max(s.CreateDelay-time.Since(start), 0)):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done(err)
}

func (s *Server) lookup(id string) (*instance, *apiError) {
	in := s.instances[id]
	if in == nil {
		if s.sources[id] != nil {
			return nil, badRequest("InvalidParameterCombination", "the emulator does not change source instance %s", id)
		}
		return nil, notFound("DBInstanceNotFound", "DBInstance %s not found.", id)
	}
	return in, nil
}

func (s *Server) modify(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, aerr := s.lookup(get(form, "DBInstanceIdentifier"))
	if aerr != nil {
		return nil, aerr
	}
	if in.status != "available" {
		return nil, badRequest("InvalidDBInstanceState", "Database instance is not in available state.")
	}
	if in.dbCluster != "" && get(form, "MasterUserPassword") != "" {
		return nil, badRequest("InvalidParameterCombination", "The requested DB Instance will be a member of a DB Cluster. Set master user password for the DB Cluster.")
	}
	if pw := get(form, "MasterUserPassword"); pw != "" {
		if err := setPassword(in.cluster, pw); err != nil {
			return nil, &apiError{http.StatusInternalServerError, "InternalFailure", err.Error()}
		}
	}
	return instanceResp("ModifyDBInstance", s.instanceXML(in)), nil
}

func (s *Server) delete(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, aerr := s.lookup(get(form, "DBInstanceIdentifier"))
	if aerr != nil {
		return nil, aerr
	}
	if in.deletionProt {
		return nil, badRequest("InvalidParameterCombination", "Cannot delete protected DB Instance, please disable deletion protection and try again.")
	}
	if in.status == "deleting" {
		return nil, badRequest("InvalidDBInstanceState", "Instance %s is already being deleted.", in.id)
	}
	if in.dbCluster != "" { // a cluster's instance: its data stays with the cluster
		x := s.instanceXML(in)
		s.deleteMemberLocked(in)
		x.DBInstanceStatus = "deleting"
		return instanceResp("DeleteDBInstance", x), nil
	}
	if get(form, "SkipFinalSnapshot") != "true" {
		return nil, badRequest("InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
	}
	x := s.instanceXML(in)
	s.deleteLocked(in)
	x.DBInstanceStatus = "deleting"
	return instanceResp("DeleteDBInstance", x), nil
}

// deleteLocked moves an instance to "deleting" and removes its cluster.
func (s *Server) deleteLocked(in *instance) {
	in.status = "deleting"
	s.remove(in.cancel, in.cluster, 0, func() { delete(s.instances, in.id) })
}

// remove stops a real cluster and removes it in the background (its
// build cancelled first), then, after delay, forgets its record.
func (s *Server) remove(cancelBuild context.CancelFunc, c *local.Cluster, delay time.Duration, forget func()) {
	cancelBuild()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.Stop(ctx, "immediate")
		_ = removeAll(c.Dir)
		time.Sleep(delay)
		s.mu.Lock()
		forget()
		s.mu.Unlock()
	}()
}

func (s *Server) instanceByARN(name string) (*instance, *apiError) {
	id, ok := strings.CutPrefix(name, "arn:aws:rds:"+Region+":"+Account+":db:")
	if !ok {
		return nil, notFound("DBInstanceNotFound", "resource %s not found", name)
	}
	if s.sources[id] != nil {
		return &instance{id: id}, nil // sources are untagged
	}
	return s.lookup(id)
}

func (s *Server) listTags(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, isCluster, aerr := s.clusterByARN(get(form, "ResourceName")); isCluster {
		if aerr != nil {
			return nil, aerr
		}
		resp := listTagsResponse{NS: ns, RequestID: requestID(), Tags: []xmlTag{}}
		for _, t := range c.tags {
			resp.Tags = append(resp.Tags, xmlTag(t))
		}
		return resp, nil
	}
	in, aerr := s.instanceByARN(get(form, "ResourceName"))
	if aerr != nil {
		return nil, aerr
	}
	resp := listTagsResponse{NS: ns, RequestID: requestID(), Tags: []xmlTag{}}
	for _, t := range in.tags {
		resp.Tags = append(resp.Tags, xmlTag(t))
	}
	return resp, nil
}

func (s *Server) addTags(form map[string][]string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, aerr := s.instanceByARN(get(form, "ResourceName"))
	if aerr != nil {
		return nil, aerr
	}
	if s.sources[in.id] != nil {
		return nil, badRequest("InvalidParameterCombination", "the emulator does not tag source instance %s", in.id)
	}
	for _, t := range tagsOf(form) {
		replaced := false
		for i := range in.tags {
			if in.tags[i].Key == t.Key {
				in.tags[i].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			in.tags = append(in.tags, t)
		}
	}
	return emptyResponse{XMLName: xml.Name{Local: "AddTagsToResourceResponse"}, NS: ns, RequestID: requestID()}, nil
}
