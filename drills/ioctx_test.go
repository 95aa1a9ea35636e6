package drills_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drill/drills"
)

// A backup is read by its real name: a symbolic link put in its place
// (after it was located) is refused, not followed.
func TestOpenRegularFollowsNoLink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "shop.dump")
	if err := os.WriteFile(real, []byte("PGDMP"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := drills.OpenRegular(real)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	link := filepath.Join(dir, "swapped.dump")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	if f, err := drills.OpenRegular(link); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		if f != nil {
			f.Close()
		}
		t.Fatalf("a link opened: %v", err)
	}
}
