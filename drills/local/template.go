package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
		return dir, nil
	}
	// The templates are drill's own: the clusters' user may pass through
	// (initdb, as that user, writes its temporary directory) but not list
	// or change them.
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

// pruneTemplates removes templates other than key (of binaries no longer
// used), except ones being made.
func pruneTemplates(root, key string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != key && !strings.HasPrefix(e.Name(), ".") {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// InitFromTemplate makes the cluster as Init does, by copying the template
// under root (made first when missing). The copy's superuser has no
// password: set it once the server runs. Dir must exist.
func (c *Cluster) InitFromTemplate(ctx context.Context, root string) error {
	if err := c.prepareDirs(); err != nil { // also makes Dir passable for initdb's working directory
		return err
	}
	tpl, err := c.template(ctx, root)
	if err != nil {
		return err
	}
	if err := copyData(ctx, tpl, c.DataDir(), c.RunAs); err != nil {
		return fmt.Errorf("copy the template cluster: %w", err)
	}
	return c.writeSettings()
}

// copyData copies a data directory of regular files and directories
// (modes kept) into dst, which exists, giving everything to runAs.
func copyData(ctx context.Context, src, dst string, runAs RunAs) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
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
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyRegular(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
		return runAs.chown(target)
	})
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
