package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The systemd unit passes systemd-analyze verify, and its ExecStart is a
// command line drill accepts.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit := readFile(t, filepath.Join("..", "..", "examples", "deploy", "drill.service"))
	m := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/drill (.*)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart=/usr/local/bin/drill … in the unit")
	}
	// The flags exist (cobra refuses an unknown flag even with --help).
	if r := drill(t, nil, append(strings.Fields(m[1]), "--help")...); r.code != 0 {
		t.Fatalf("ExecStart's command line: exit %d %s", r.code, r.stderr)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: the unit's syntax is not checked here")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "drill.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/drill", drillBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The Dockerfile keeps the rules of a small, safe image: pinned base
// images, no recommended packages and no apt lists left, a non-root user,
// exec-form entrypoint, the PostgreSQL programs drill is told about. It is
// built where a Docker daemon answers.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "examples", "deploy", "Dockerfile")
	text := readFile(t, path)
	var user, pgMajor, binMajor string
	for i, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			if !strings.Contains(f[1], ":") || strings.HasSuffix(f[1], ":latest") {
				t.Errorf("line %d: FROM %s: pin a version tag", i+1, f[1])
			}
		case "RUN":
			if strings.Contains(line, "apt-get install") && !strings.Contains(line, "--no-install-recommends") {
				t.Errorf("line %d: apt-get install without --no-install-recommends", i+1)
			}
			if strings.Contains(line, "apt-get update") && !strings.Contains(line, "rm -rf /var/lib/apt/lists") {
				t.Errorf("line %d: apt lists left in the image", i+1)
			}
			if m := regexp.MustCompile(`postgresql-(\d+)\b`).FindStringSubmatch(line); m != nil {
				pgMajor = m[1]
			}
		case "USER":
			user = f[1]
		case "ENV":
			if m := regexp.MustCompile(`DRILL_PG_BIN=/usr/lib/postgresql/(\d+)/bin`).FindStringSubmatch(line); m != nil {
				binMajor = m[1]
			}
		case "ENTRYPOINT", "CMD":
			if !strings.HasPrefix(strings.TrimSpace(line[len(f[0]):]), "[") {
				t.Errorf("line %d: %s in shell form; use the exec form [\"...\"]", i+1, f[0])
			}
		}
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("the image runs as %q: run as a user of its own", user)
	}
	if pgMajor == "" || pgMajor != binMajor {
		t.Errorf("PostgreSQL %q installed, DRILL_PG_BIN names %q", pgMajor, binMajor)
	}
	if _, err := exec.LookPath("docker"); err != nil || exec.Command("docker", "info").Run() != nil {
		t.Log("no Docker daemon here: the rules above were checked; the image was not built")
		return
	}
	out, err := exec.Command("docker", "build", "-f", path, "-t", "drill-test-build", filepath.Join("..", "..")).CombinedOutput()
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}
