package local

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// giveTree hands a tree to the clusters' user bottom up and never through
// a link: a link in the tree is given away itself, what it points to
// stays where it was; every directory is given away after its entries.
func TestGiveTreeBottomUpNoLinks(t *testing.T) {
	sandbox, _, err := LookupSandbox("")
	if err != nil || !sandbox.set {
		t.Skip("needs root and a sandbox user")
	}
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(outside, []byte("root"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, d := range []string{"base/1", "global"} {
		if err := os.MkdirAll(filepath.Join(data, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "base/1/112"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(data, "global/etc")); err != nil {
		t.Fatal(err)
	}
	var order []string
	record := func(p string) error { order = append(order, p); return nil }
	if err := walkTree(data, record, record); err != nil {
		t.Fatal(err)
	}
	if i, j := slices.Index(order, filepath.Join(data, "base/1/112")), slices.Index(order, filepath.Join(data, "base")); i < 0 || j < i {
		t.Errorf("a directory came before its entries: %v", order)
	}
	c := &Cluster{RunAs: sandbox}
	if err := c.giveTree(data); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) uint32 {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid
	}
	for _, p := range []string{data, filepath.Join(data, "base/1/112"), filepath.Join(data, "global/etc")} {
		if owner(p) != sandbox.UID {
			t.Errorf("%s not given to the sandbox user", p)
		}
	}
	if owner(outside) != uint32(os.Geteuid()) {
		t.Error("the file a link in the tree points to was given away")
	}
}
