package local

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func filterScript(t *testing.T, f *plainFilter, in string) (string, error) {
	t.Helper()
	if f.key == "" {
		f.key = "KEY"
	}
	var out strings.Builder
	err := f.run(strings.NewReader(in), &out)
	return out.String(), err
}

const trailer = "\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n"

func TestPlainFilterKeepsDataAndDropsWhatTheRoleMayNotRun(t *testing.T) {
	in := "\\restrict abc\n" +
		"SET default_tablespace = 'fast';\n" +
		"CREATE TABLE public.t (id int, body text);\n" +
		"ALTER TABLE public.t OWNER TO \"Prod Owner\";\n" +
		"CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$ select 'a;b\\! x' $_$;\n" +
		"COMMENT ON FUNCTION public.f() IS 'GRANT; -- not a comment';\n" +
		"COPY public.t (id, body) FROM stdin;\n" +
		"1\tGRANT ALL ON t TO x;\n" +
		"2\t\\\\! id\n" +
		"\\.\n" +
		"GRANT SELECT ON TABLE public.t TO reader;\n" +
		"REVOKE ALL ON SCHEMA public FROM PUBLIC;\n" +
		"CREATE PUBLICATION p FOR ALL TABLES;\n" +
		"SECURITY LABEL FOR selinux ON TABLE public.t IS 'x';\n" +
		"/* a; comment \\! */ SELECT 1;\n" + trailer
	out, err := filterScript(t, &plainFilter{}, in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "\\restrict KEY\n") {
		t.Errorf("the script does not start with drill's \\restrict: %q", out[:30])
	}
	for _, want := range []string{"SET default_tablespace = '';", "CREATE TABLE public.t", "$_$ select 'a;b\\! x' $_$;",
		"IS 'GRANT; -- not a comment';", "1\tGRANT ALL ON t TO x;\n2\t\\\\! id\n\\.\n", "/* a; comment \\! */ SELECT 1;"} {
		if !strings.Contains(out, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	for _, gone := range []string{"OWNER TO", "GRANT SELECT", "REVOKE", "PUBLICATION", "SECURITY LABEL", "'fast'", "\\restrict abc", "\\unrestrict"} {
		if strings.Contains(out, gone) {
			t.Errorf("script still has %q", gone)
		}
	}
	// what is left out keeps its lines: psql's line numbers are the backup's plus one
	if got, want := strings.Count(out, "\n"), strings.Count(in, "\n")+1; got != want {
		t.Errorf("%d lines, want %d", got, want)
	}
}

func TestPlainFilterRefusesMetaCommands(t *testing.T) {
	for name, script := range map[string]string{
		"shell":             "CREATE TABLE p (id int);\n\\! id > pwned.txt\n",
		"mid-line":          "SELECT 1; \\! id\n",
		"after a statement": "SELECT 1 \\g /tmp/x\n",
		"copy to a file":    "\\copy (select 1) to '/tmp/x'\n",
		"setenv":            "\\setenv PGPASSWORD x\n",
		"second connect":    "\\connect other\n",
	} {
		_, err := filterScript(t, &plainFilter{}, script+trailer)
		if !errors.Is(err, ErrUnsafeBackup) {
			t.Errorf("%s: %v, want ErrUnsafeBackup", name, err)
		}
	}
}

func TestPlainFilterTruncated(t *testing.T) {
	for name, script := range map[string]string{
		"no trailer":        "CREATE TABLE p (id int);\n",
		"inside copy data":  "COPY p (id) FROM stdin;\n1\n2\n",
		"inside a string":   "SELECT 'abc\n" + trailer,
		"inside statement":  "CREATE TABLE p (id int\n",
		"create, no switch": "CREATE DATABASE x;\n",
	} {
		f := &plainFilter{connect: name == "create, no switch"}
		if _, err := filterScript(t, f, script); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v, want ErrTruncated", name, err)
		}
	}
}

func TestPlainFilterCreateDatabaseDump(t *testing.T) {
	in := "\\restrict k\nSET statement_timeout = 0;\nCREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';\n" +
		"ALTER DATABASE shop OWNER TO postgres;\n\\unrestrict k\n\\connect shop\n\\restrict k\nSET statement_timeout = 0;\n" +
		"CREATE TABLE t (id int);\n" + trailer
	facts, err := scanPlain(strings.NewReader(in))
	if err != nil || facts.Database != "shop" {
		t.Fatalf("scan: %+v %v", facts, err)
	}
	out, err := filterScript(t, &plainFilter{connect: true}, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "CREATE DATABASE") || strings.Contains(out, "ALTER DATABASE") || strings.Contains(out, "\\connect") ||
		!strings.Contains(out, "CREATE TABLE t") {
		t.Errorf("script:\n%s", out)
	}
}

func TestScanPlainFindsExtensions(t *testing.T) {
	in := "CREATE SCHEMA ext;\nCREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA ext;\n" +
		"COMMENT ON EXTENSION pg_stat_statements IS 'x';\nCREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;\n" +
		"COPY t FROM stdin;\n\\.\nCREATE EXTENSION late;\n"
	facts, err := scanPlain(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []extension{{"pg_stat_statements", "ext"}, {"uuid-ossp", "public"}}
	if len(facts.Extensions) != 2 || facts.Extensions[0] != want[0] || facts.Extensions[1] != want[1] {
		t.Fatalf("extensions %+v, want %+v", facts.Extensions, want)
	}
	f := &plainFilter{premade: map[string]bool{"pg_stat_statements": true}, schemas: map[string]bool{"ext": true}}
	out, err := filterScript(t, f, strings.Replace(in, "COPY t FROM stdin;\n\\.\nCREATE EXTENSION late;\n", "", 1)+trailer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `CREATE SCHEMA IF NOT EXISTS "ext";`) || strings.Contains(out, "pg_stat_statements") ||
		!strings.Contains(out, `"uuid-ossp"`) || strings.Contains(out, "COMMENT ON EXTENSION") {
		t.Errorf("script:\n%s", out)
	}
}

func TestRestoreListLeavesOutPremadeExtensions(t *testing.T) {
	toc := ";\n; Archive created at 2026-11-28\n8; 2615 16421 SCHEMA - ext postgres\n" +
		"2; 3079 16422 EXTENSION - pg_stat_statements \n3419; 0 0 COMMENT - EXTENSION pg_stat_statements \n" +
		"3; 3079 16453 EXTENSION - pg_trgm \n219; 1259 16534 TABLE public a postgres\n" +
		"3410; 0 16534 TABLE DATA public a postgres\n3411; 0 16537 TABLE DATA public b postgres\n"
	list, n := restoreList(toc, map[string]bool{"pg_stat_statements": true}, nil, map[string]bool{"ext": true})
	if n != 2 {
		t.Errorf("%d TABLE DATA entries, want 2", n)
	}
	for _, left := range []string{";8; 2615 16421 SCHEMA - ext", ";2; 3079 16422 EXTENSION - pg_stat_statements", ";3419; 0 0 COMMENT - EXTENSION"} {
		if !strings.Contains(list, left) {
			t.Errorf("list keeps %q:\n%s", left, list)
		}
	}
	if !strings.Contains(list, "\n3; 3079 16453 EXTENSION - pg_trgm") {
		t.Errorf("list leaves out the trusted extension:\n%s", list)
	}
	if got := tocExtensions(toc); len(got) != 2 || got[0] != "pg_stat_statements" || got[1] != "pg_trgm" {
		t.Errorf("extensions %v", got)
	}
}

func TestBackupLine(t *testing.T) {
	if got := backupLine("psql:<stdin>:13: ERROR:  relation \"x\" does not exist"); got != "backup line 12: ERROR:  relation \"x\" does not exist" {
		t.Error(got)
	}
}

// What a scanner could misread as data or as a comment, psql reads as a
// command: each is refused by drill's reader itself.
func TestPlainFilterRefusesWhatPsqlWouldRun(t *testing.T) {
	for name, script := range map[string]string{
		"copy to stdout":   "COPY (SELECT 1 AS stdin FROM pg_class) TO STDOUT;\n\\! id\n\\.\n",
		"carriage return":  "-- c\r\\! id\n",
		"variable":         "SELECT :'DBNAME';\n",
		"variable in E''":  "SELECT :E'\\' \\! id';\n",
		"plain variable":   "SELECT :DBNAME;\n",
		"nul byte":         "SELECT 1;\x00\\! id\n",
		"nul in copy data": "COPY t (a) FROM stdin;\n1\x00\n\\.\n",
	} {
		_, err := filterScript(t, &plainFilter{}, script+trailer)
		if !errors.Is(err, ErrUnsafeBackup) {
			t.Errorf("%s: %v, want ErrUnsafeBackup", name, err)
		}
	}
}

// Legitimate dumps that a too-narrow reader would refuse.
func TestPlainFilterAcceptsRealDumpShapes(t *testing.T) {
	cols := make([]string, 40)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d", i)
	}
	wide := "COPY public.wide (" + strings.Join(cols, ", ") + ") FROM stdin;\n\\N\t1\n\\.\n"
	args := strings.Repeat("integer, ", 30) + "integer"
	owner := "ALTER FUNCTION public.f(" + args + ") OWNER TO postgres;\n"
	casts := "SELECT '1'::integer, a[1:2] FROM t;\n"
	connectTwice := "CREATE DATABASE shop;\n\\connect shop\nALTER DATABASE shop SET search_path = x;\nALTER ROLE app IN DATABASE shop SET work_mem = '1MB';\n\\connect shop\nCREATE TABLE t (id int);\n"
	for name, tc := range map[string]struct {
		script string
		f      *plainFilter
		gone   string
	}{
		"40-column copy":     {wide, &plainFilter{}, ""},
		"long signature":     {owner, &plainFilter{}, "OWNER TO"},
		"casts and slices":   {casts, &plainFilter{}, ""},
		"connect twice (-C)": {connectTwice, &plainFilter{connect: true}, "ALTER ROLE"},
	} {
		out, err := filterScript(t, tc.f, tc.script+trailer)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if tc.gone != "" && strings.Contains(out, tc.gone) {
			t.Errorf("%s: still has %q", name, tc.gone)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for line, want := range map[string]string{
		"pg_restore (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n": "15.20",
		"psql (PostgreSQL) 17.6\n":                                 "17.6",
		"pg_restore (PostgreSQL) 18beta1\n":                        "18",
		"something else\n":                                         "",
	} {
		if got := parseVersion([]byte(line)); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

// pg_restore's progress says how far through the table of contents it is,
// and how long the rest may take at the rate so far.
func TestRestoreETA(t *testing.T) {
	o := restoreOutput{items: 10, done: 4, start: time.Now().Add(-4 * time.Second)}
	got := o.eta()
	if !strings.Contains(got, "item 4 of 10 (40%)") || !strings.Contains(got, "about 6") {
		t.Fatalf("eta %q", got)
	}
	if (&restoreOutput{}).eta() != "" {
		t.Fatal("an ETA without a table of contents")
	}
	if n := listItems("; comment\n1; 2 3 TABLE public t o\n\n2; 0 3 TABLE DATA public t o\n"); n != 2 {
		t.Fatalf("listItems = %d, want 2", n)
	}
}

// Passwords in what a restore program prints never reach the record.
func TestRedact(t *testing.T) {
	for in, secret := range map[string]string{
		"connect: host=x password=hunter2 user=y": "hunter2",
		"password='a b c'":                        "a b c",
		`password='a\' b c'`:                      "b c",
		`password="dq secret"`:                    "secret",
		"    password 'hunter2',":                 "hunter2",
		"CREATE USER MAPPING FOR x SERVER s OPTIONS (user 'u', password 'pw1');": "pw1",
		"ALTER ROLE r PASSWORD 'md5abc';":                                        "md5abc",
		"postgres://u:topsecret@h/db":                                            "topsecret",
		"postgres://u:topsecretpa":                                               "topsecret",
		"PGPASSWORD=x1y2z3":                                                      "x1y2z3",
	} {
		if got := redact(in); strings.Contains(got, secret) {
			t.Errorf("redact(%q) = %q: %q left", in, got, secret)
		}
	}
	var l restoreLog
	l.add("postgres://u:" + strings.Repeat("s", 2000) + "@h/db")
	if strings.Contains(l.String(), "ssss") {
		t.Error("a cut line kept half a password")
	}
}

// The replay's progress line counts segments against the archive's end
// and says how long the rest may take at the rate so far.
func TestReplayProgress(t *testing.T) {
	r := replayProgress{start: time.Now().Add(-10 * time.Second), last: "000000010000000000000010"}
	if got := r.say("000000010000000000000002"); got != "replayed WAL up to segment 000000010000000000000002 of 000000010000000000000010" {
		t.Fatalf("first line %q", got)
	}
	if got := r.say("000000010000000000000004"); !strings.HasSuffix(got, "of 000000010000000000000010, about 1m00s left") {
		t.Fatalf("line %q: 2 segments in 10 s, 12 to go", got)
	}
	if got := (&replayProgress{}).say("000000010000000000000004"); got != "replayed WAL up to segment 000000010000000000000004" {
		t.Fatalf("without an end: %q", got)
	}
}
