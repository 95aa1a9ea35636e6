package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drill/drills"
	_ "drill/drills/backends" // every backend registered, as in drill itself
	"drill/drills/config"
	"drill/drills/local"
	"drill/drills/pgdump"
)

const goodConfig = `database_url: ${DRILL_TEST_CONFIG_URL}
drills:
  - name: orders
    schedule: quarterly
    timeout: 90m
    source:
      type: pgdump
      location: /backups/orders/
    target:
      type: local
      run_as: postgres
    objectives: { rto: 30m, rpo: 1d2h }
    checks:
      - type: row_count
        table: public.orders
        min: 1
      - type: checksum
        table: public.orders
      - type: recency
        table: public.orders
        column: created_at
        max_age: 26h
      - type: sql
        name: no-negative-totals
        query: select count(*) from orders where total < 0
        expect: "0"
`

func TestParseConfig(t *testing.T) {
	t.Setenv("DRILL_TEST_CONFIG_URL", "postgres://drill:s3cret@db/drill")
	cfg, err := config.Parse("drill.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "postgres://drill:s3cret@db/drill" {
		t.Errorf("database_url %q: ${VAR} not expanded", cfg.DatabaseURL)
	}
	d := cfg.Drill("orders")
	if d == nil || d.Timeout != 90*time.Minute || d.Objectives.RPO != 26*time.Hour || d.Objectives.RTO != 30*time.Minute {
		t.Fatalf("drill %+v", d)
	}
	if d.Target.Settings.(local.Settings).RunAs != "postgres" || d.Source.Settings.(pgdump.Settings).Location != "/backups/orders/" || len(d.Checks) != 4 {
		t.Fatalf("drill %+v", d)
	}
	names := []string{"row_count public.orders", "checksum public.orders", "recency public.orders.created_at", "no-negative-totals"}
	for i, c := range d.Checks {
		if c.Name != names[i] {
			t.Errorf("check %d name %q, want %q", i, c.Name, names[i])
		}
	}
	if *d.Checks[3].Expect != "0" || d.Checks[2].MaxAge != 26*time.Hour || *d.Checks[0].Min != 1 {
		t.Errorf("check fields: %+v", d.Checks)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := config.Parse("x.yaml", []byte("drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Drills[0]
	if d.Timeout != drills.DefaultTimeout || d.Target.Type != local.TargetType || d.Objectives.RTO != 0 {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Setenv("DRILL_TEST_SET", "x")
	cases := []struct {
		name, yaml string
		want       []string // each "LINE: text"
	}{
		{"unknown field", "drills:\n  - name: a\n    sorce: {}\n", []string{`3: unknown field "sorce" in a drill`, `2: drill "a": missing required field source`}},
		{"unknown check field", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - type: sql\n        querry: x\n", []string{`6: unknown field "querry" in a check`, `5: drill "a": check 1: sql check needs query`}},
		{"unknown top-level field", "drill:\n  - name: a\n", []string{`1: unknown field "drill" in the top level`, `1: no drills`}},
		{"unknown source type", "drills:\n  - name: a\n    source:\n      type: ftp\n", []string{`4: drill "a": source: unknown type "ftp"`}},
		{"unknown target type", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    target: {type: gcp}\n", []string{`4: drill "a": target: unknown type "gcp"`}},
		{"unknown check type", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - type: vibes\n", []string{`5: drill "a": check 1: unknown check type "vibes"`}},
		{"bad duration", "drills:\n  - name: a\n    timeout: soon\n    source: {type: pgdump, location: /b}\n", []string{`3: bad duration "soon"`}},
		{"bad objective", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    objectives:\n      rto: -5m\n", []string{`5: bad duration "-5m"`}},
		{"not a number", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - type: row_count\n        table: t\n        min: lots\n", []string{`7: "lots" is not a whole number`}},
		{"duplicate name", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n  - name: a\n    source: {type: pgdump, location: /c}\n", []string{`4: drill "a": duplicate name (first defined at line 2)`}},
		{"missing name and source", "drills:\n  - timeout: 1h\n", []string{"2: drill 1: missing required field name", "2: drill 1: missing required field source"}},
		{"missing location", "drills:\n  - name: a\n    source:\n      type: pgdump\n", []string{"3: drill \"a\": source: missing required field location"}},
		{"bad name", "drills:\n  - name: Orders_DB\n    source: {type: pgdump, location: /b}\n", []string{`2: drill "Orders_DB": drill name "Orders_DB": use lower-case letters`}},
		{"field of another check type", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - {type: checksum, table: t, equals: 5}\n      - type: sql\n        query: select 1\n        expect: \"1\"\n        max: 0\n", []string{
			"5: drill \"a\": check 1: equals is not a field of checksum checks (theirs: name, table, expect)",
			"9: drill \"a\": check 2: max is not a field of sql checks (theirs: name, query, expect)"}},
		{"check without bound", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - {type: row_count, table: t}\n", []string{"5: drill \"a\": check 1: row_count check needs min, max or equals"}},
		{"sql without expect", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - {type: sql, query: select 1}\n", []string{"5: drill \"a\": check 1: sql check needs expect"}},
		{"unset variable", "drills:\n  - name: a\n    source:\n      type: pgdump\n      location: ${DRILL_TEST_UNSET_VAR}/x\n", []string{"5: environment variable DRILL_TEST_UNSET_VAR is not set"}},
		{"syntax error", "drills:\n  - name: a\n    source: {type: pgdump\n", []string{"2: did not find expected"}},
		{"no drills", "database_url: x\n", []string{"1: no drills"}},
		{"empty file", "", []string{"empty file"}},
		{"rds target without network", "drills:\n  - name: a\n    source: {type: rds-snapshot, instance: prod}\n    target:\n      type: rds\n      instance_class: db.t4g.micro\n", []string{"4: drill \"a\": target: missing required field subnet_group"}},
		{"rds source without instance", "drills:\n  - name: a\n    source: {type: rds-pitr}\n    target: {type: rds, instance_class: x, subnet_group: y}\n", []string{"3: drill \"a\": source: missing required field instance"}},
		{"rds source into a local target", "drills:\n  - name: a\n    source: {type: rds-snapshot, instance: prod}\n", []string{"2: drill \"a\": target: an rds-snapshot source restores into an rds target"}},
		{"bad restore time", "drills:\n  - name: a\n    source:\n      type: rds-pitr\n      instance: prod\n      restore_time: yesterday\n    target: {type: rds, instance_class: x, allow_default_network: true}\n", []string{`6: drill "a": source: restore_time "yesterday"`}},
		{"own tag in tags", "drills:\n  - name: a\n    source: {type: rds-snapshot, instance: prod}\n    target:\n      type: rds\n      instance_class: x\n      subnet_group: y\n      tags: {ManagedBy: me}\n", []string{`8: drill "a": target: tags: "ManagedBy" is drill's own tag`}},
		{"timeout too long", "drills:\n  - name: a\n    timeout: 30d\n    source: {type: pgdump, location: /b}\n", []string{`3: drill "a": timeout 720h0m0s: must be between 1s and 7d`}},
		{"timeout too short", "drills:\n  - name: a\n    timeout: 1ns\n    source: {type: pgdump, location: /b}\n", []string{`3: drill "a": timeout 1ns: must be between 1s and 7d`}},
		{"schedule too often", "drills:\n  - name: a\n    schedule: \"@every 0s\"\n    source: {type: pgdump, location: /b}\n", []string{`3: drill "a": schedule "@every 0s": runs more than once a minute`}},
		{"negative schedule", "drills:\n  - name: a\n    schedule: \"@every -5m\"\n    source: {type: pgdump, location: /b}\n", []string{`3: drill "a": schedule "@every -5m": runs more than once a minute`}},
		{"schedule that never runs", "drills:\n  - name: a\n    schedule: \"0 0 30 2 *\"\n    source: {type: pgdump, location: /b}\n", []string{`3: drill "a": schedule "0 0 30 2 *": does not run at least once a year`}},
		{"fraction for a count", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - type: row_count\n        table: t\n        min: 1.5\n", []string{`7: "1.5" is not a whole number (min)`}},
		{"every problem at once, a bad percentage among them", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    timeout: forever\n    checks:\n      - {type: drift, max_shrink: 150%}\n      - {type: rowcount, table: t}\n", []string{
			`4: bad duration "forever"`, `6: "150%" is not a percentage`, `7: drill "a": check 2: unknown check type "rowcount"`}},
		{"local target on this host", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    target:\n      type: local\n      run_as: no-such-user-here\n      dir: /no/such/dir\n", []string{
			`6: drill "a": target: no OS user "no-such-user-here" on this host`, `7: drill "a": target: /no/such/dir is not a directory on this host`}},
		{"fraction for jobs", "drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    target: {type: local, jobs: 2.5}\n", []string{`4: "2.5" is not a whole number (jobs)`}},
		{"four mistakes at once", "drills:\n  - name: a\n    colour: blue\n    timeout: banana\n    source:\n      type: pgdump\n    checks:\n      - type: row_count\n        table: t\n        min: 1.5\n", []string{
			`3: unknown field "colour" in a drill`, `4: bad duration "banana"`, `5: drill "a": source: missing required field location`, `10: "1.5" is not a whole number (min)`}},
		{"several problems at once", "drills:\n  - name: a\n    source: {type: pgdump}\n    checks:\n      - {type: checksum}\n", []string{
			"3: drill \"a\": source: missing required field location", "5: drill \"a\": check 1: checksum check needs table"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("conf/drill.yaml", []byte(tc.yaml))
			var ce *config.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, "conf/drill.yaml:"+w) && !strings.Contains(msg, "conf/drill.yaml: "+w) {
					t.Errorf("error\n%s\nwant it to contain conf/drill.yaml:%s", msg, w)
				}
			}
			if got := strings.Count(msg, "\n") + 1; got != len(tc.want) {
				t.Errorf("%d problems reported, want %d:\n%s", got, len(tc.want), msg)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("DRILL_TEST_DIR", "/srv/backups")
	t.Setenv("DRILL_TEST_MIN", "7")
	y := "drills:\n  - name: a\n    source: {type: pgdump, location: \"${DRILL_TEST_DIR}/orders/\"}\n    checks:\n" +
		"      - type: row_count\n        table: t\n        min: ${DRILL_TEST_MIN}\n      - {type: sql, query: \"select '$${HOME}'\", expect: x}\n"
	cfg, err := config.Parse("x.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Drills[0]
	if loc := d.Source.Settings.(pgdump.Settings).Location; loc != "/srv/backups/orders/" || *d.Checks[0].Min != 7 || d.Checks[1].Query != "select '${HOME}'" {
		t.Fatalf("expanded: %q %d %q", loc, *d.Checks[0].Min, d.Checks[1].Query)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "drill.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no such file") || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("got %v", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("DRILL_DEMO_BACKUPS", "/tmp/backups")
	for _, p := range []string{"../../examples/drill.yaml", "../../examples/demo/drill.yaml", "../../examples/demo/drill-rds.yaml"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if _, err := config.Load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "26h": 26 * time.Hour, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second} {
		got, err := config.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "0s", "-1h", "abc", "1w", "d"} {
		if _, err := config.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q): want an error", bad)
		}
	}
}

// Controls: a drill's own, else the evidence section's, else none named
// (the defaults apply at export); the proof checks' fields parse, and a
// bad max_shrink is reported at its line.
func TestParseControlsAndProofChecks(t *testing.T) {
	cfg, err := config.Parse("x.yaml", []byte(`evidence:
  controls: ["SOC 2 A1.3", "ISO 27001 A.8.13"]
drills:
  - name: a
    source: {type: pgdump, location: /b}
    controls: ["HIPAA 164.308(a)(7)(ii)(D)"]
    checks:
      - {type: fingerprint, exclude: [public.sessions]}
      - {type: amcheck, heapallindexed: false, tables: [orders]}
      - {type: drift, max_shrink: 25%}
  - name: b
    source: {type: pgdump, location: /b}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Drill("a"), cfg.Drill("b")
	if fmt.Sprint(a.Controls) != "[HIPAA 164.308(a)(7)(ii)(D)]" || fmt.Sprint(b.Controls) != "[SOC 2 A1.3 ISO 27001 A.8.13]" {
		t.Errorf("controls: a %v, b %v", a.Controls, b.Controls)
	}
	c := a.Checks
	if c[0].Exclude[0] != "public.sessions" || *c[1].HeapAllIndexed || c[1].Tables[0] != "orders" || *c[2].MaxShrinkPercent != 25 {
		t.Errorf("checks: %+v", c)
	}
	_, err = config.Parse("x.yaml", []byte("drills:\n  - name: a\n    source: {type: pgdump, location: /b}\n    checks:\n      - {type: drift, max_shrink: lots}\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:5") || !strings.Contains(err.Error(), "percentage") {
		t.Errorf("bad max_shrink: %v", err)
	}
}
