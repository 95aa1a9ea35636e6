package local

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Provisioning from a template: initdb runs once per PostgreSQL binaries,
// OS user and initdb options, into a template kept under the templates
// directory; each throwaway cluster is a copy of it (a fraction of
// initdb's time). A template is made under a temporary name and renamed
// into place, so that two drills making it at once both end with a whole
// one; a template of other binaries is removed when a new one is made.

// templateKey names the template of binaries bin run as runAs.
func templateKey(bin Binaries, runAs RunAs) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d:%d\n%s", bin.Dir, bin.version(), runAs.UID, runAs.GID, strings.Join(initdbOptions(true), " "))
	return "pg" + strings.SplitN(bin.version(), ".", 2)[0] + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// initdbOptions are initdb's options besides the directory and the
// password file: with password, TCP logins need one (scram), else none
// is possible.
func initdbOptions(password bool) []string {
	args := []string{"-E", "UTF8", "--locale=C", "--auth-local=trust", "--no-sync", "--no-instructions"}
	if password {
		return append(args, "--auth-host=scram-sha-256")
	}
	return append(args, "--auth-host=reject")
}

// template returns the data directory of the template for c's binaries
// and user under root, making it when there is none.
func (c *Cluster) template(ctx context.Context, root string) (string, error) {
	key := templateKey(c.Bin, c.RunAs)
	dir := filepath.Join(root, key)
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		if c.ours(dir) {
			return dir, nil
		}
		// made by an earlier version as the clusters' user, which could
		// have changed it since: made again, never adopted
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
	}
	// The templates are drill's own: the clusters' user may pass through
	// (initdb, as that user, writes its temporary directory) but not list
	// or change them; once made, a template belongs to drill's user.
	if err := os.MkdirAll(root, 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(root, 0o711); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, ".make-"+key+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		return "", err
	}
	if err := c.RunAs.chown(tmp); err != nil {
		return "", err
	}
	args := append([]string{"-D", tmp, "-U", c.superuser()}, initdbOptions(true)...)
	if err := c.run(ctx, c.Bin.Path("initdb"), args...); err != nil {
		return "", fmt.Errorf("initdb of the template cluster in %s: %w", root, err)
	}
	if err := c.takeTree(tmp); err != nil {
		return "", err
	}
	// Rename into place; when another drill was quicker, use its template.
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "PG_VERSION")); statErr == nil {
			return dir, nil
		}
		return "", err
	}
	pruneTemplates(root, key)
	return dir, nil
}

// ours says whether a template or spare belongs to drill's own user
// (always, when clusters run as drill's user).
func (c *Cluster) ours(dir string) bool {
	if !c.RunAs.set {
		return true
	}
	var st syscall.Stat_t
	return syscall.Lstat(dir, &st) == nil && int(st.Uid) == os.Geteuid()
}

// takeTree gives a tree the clusters' user made (initdb's) to drill's own
// user: the top first, so that nothing the clusters' user runs can reach
// the tree by path while it is walked. Nothing running as that user — a
// server of an earlier drill — can then change what later drills run.
func (c *Cluster) takeTree(dir string) error {
	if !c.RunAs.set {
		return nil
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	return walkTree(dir, func(p string) error { return os.Lchown(p, uid, gid) }, nil)
}

// giveTree gives a tree of drill's own to the clusters' user, bottom up:
// a directory is given away only once everything in it has been, so the
// clusters' user never holds a directory drill still walks through.
func (c *Cluster) giveTree(dir string) error {
	if !c.RunAs.set {
		return nil
	}
	give := func(p string) error { return os.Lchown(p, int(c.RunAs.UID), int(c.RunAs.GID)) }
	if err := walkTree(dir, give, give); err != nil {
		return err
	}
	return give(dir)
}

// walkTree calls file for every entry under dir that is not a directory
// (links included, never followed) and, after a directory's entries,
// dirDone for the directory.
func walkTree(dir string, file, dirDone func(string) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() { // d_type: a link is not a directory here
			if err := file(p); err != nil {
				return err
			}
			continue
		}
		if err := walkTree(p, file, dirDone); err != nil {
			return err
		}
		if dirDone != nil {
			if err := dirDone(p); err != nil {
				return err
			}
		} else if err := file(p); err != nil {
			return err
		}
	}
	return nil
}

// pruneTemplates removes templates other than key (of binaries no longer
// used) and their spares, except ones being made. Each is first renamed
// to a name of its own, so that a spare another drill takes at that
// moment is either taken whole or removed whole.
func pruneTemplates(root, key string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		old := name != key && !strings.HasPrefix(name, ".") ||
			strings.HasPrefix(name, sparePrefix) && !strings.HasPrefix(name, sparePrefix+key+"-")
		if !e.IsDir() || !old {
			continue
		}
		doomed := filepath.Join(root, prunePrefix+rand.Text())
		if os.Rename(filepath.Join(root, name), doomed) == nil {
			_ = os.RemoveAll(doomed)
		}
	}
}

// InitFromTemplate makes the cluster as Init does, from the template under
// root (made first when missing): it takes a spare copy made ahead of
// time when there is one, else copies the template. The copy's superuser
// has no password: set it once the server runs. Dir must exist.
func (c *Cluster) InitFromTemplate(ctx context.Context, root string) error {
	if err := c.prepareDirs(false); err != nil { // also makes Dir passable for initdb's working directory
		return err
	}
	tpl, err := c.template(ctx, root)
	if err != nil {
		return err
	}
	// The data directory stays drill's own while it is filled: the
	// clusters' user gets it, bottom up, once it is whole.
	if !c.claimSpare(root) {
		if err := os.Mkdir(c.DataDir(), 0o700); err != nil {
			return err
		}
		if err := copyData(ctx, tpl, c.DataDir()); err != nil {
			return fmt.Errorf("copy the template cluster: %w", err)
		}
	}
	if err := c.giveTree(c.DataDir()); err != nil {
		return fmt.Errorf("give the cluster's data directory to %s: %w", c.RunAs.Name, err)
	}
	return c.writeSettings()
}

// Spares: a copy of the template made ahead of time, beside it under the
// templates directory. Provisioning renames one into the new cluster's
// directory — when both are on one file system — and gives it to the
// clusters' user, instead of copying ~1,000 files while the drill's clock
// runs; the next spare is copied while that drill restores (MakeSpare).
// Like the templates, spares are drill's own until claimed; spares of
// other binaries go with their template.

const (
	sparePrefix  = ".spare-"
	makingPrefix = ".making-spare-"
	prunePrefix  = ".prune-"
	// staleMaking is when a template or spare still being made (or
	// removed) was left by a process that died: making one takes seconds.
	staleMaking = 10 * time.Minute
)

func spareGlob(root, key string) string { return filepath.Join(root, sparePrefix+key+"-*") }

// sameFileSystem says whether a spare under root can be renamed into
// the cluster's directory.
func (c *Cluster) sameFileSystem(root string) bool {
	var a, b syscall.Stat_t
	return syscall.Stat(root, &a) == nil && syscall.Stat(c.Dir, &b) == nil && a.Dev == b.Dev
}

// claimSpare moves a spare (drill's own) into place as the cluster's data
// directory, which does not exist yet; false when there is none (or
// another drill took it first).
func (c *Cluster) claimSpare(root string) bool {
	if !c.sameFileSystem(root) {
		return false
	}
	spares, _ := filepath.Glob(spareGlob(root, templateKey(c.Bin, c.RunAs)))
	for _, s := range spares {
		if !c.ours(s) {
			_ = os.RemoveAll(s) // not drill's own: not to be run
			continue
		}
		if os.Rename(s, c.DataDir()) == nil {
			return true
		}
	}
	return false
}

// MakeSpare copies the template under root into a new spare unless one is
// there already (or spares cannot serve the cluster's directory). Call it
// after InitFromTemplate; it may run while the cluster restores.
func (c *Cluster) MakeSpare(ctx context.Context, root string) error {
	key := templateKey(c.Bin, c.RunAs)
	tpl := filepath.Join(root, key)
	if !c.sameFileSystem(root) {
		return nil
	}
	removeStaleMaking(root)
	if have, _ := filepath.Glob(spareGlob(root, key)); len(have) > 0 {
		return nil
	}
	tmp, err := os.MkdirTemp(root, makingPrefix)
	if err != nil {
		return err
	}
	// drill's own until a drill claims it and gives it away
	if err := copyData(ctx, tpl, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy the template cluster into a spare: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(root, sparePrefix+key+"-"+rand.Text())); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// removeStaleMaking removes templates and spares whose making (or
// removal) was cut short.
func removeStaleMaking(root string) {
	var making []string
	for _, prefix := range []string{makingPrefix, ".make-", prunePrefix} {
		m, _ := filepath.Glob(filepath.Join(root, prefix+"*"))
		making = append(making, m...)
	}
	for _, m := range making {
		if fi, err := os.Lstat(m); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > staleMaking {
			_ = os.RemoveAll(m)
		}
	}
}

// copyWorkers is how many files of a template are copied at once: a
// template is ~1,000 mostly small files, and creating each one waits on
// the file system's journal more than on the disk.
const copyWorkers = 8

// copyData copies a data directory of regular files and directories
// (modes kept) into dst, which exists and is drill's own. The directories
// are made first, in walk order; the files are copied by copyWorkers at
// once.
func copyData(ctx context.Context, src, dst string) error {
	type file struct {
		src, dst string
		mode     fs.FileMode
	}
	var files []file
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case d.Type().IsRegular():
			files = append(files, file{p, target, info.Mode().Perm()})
			return nil
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyWorkers)
	for _, f := range files {
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			return copyRegular(f.src, f.dst, f.mode)
		})
	}
	return g.Wait()
}

func copyRegular(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
