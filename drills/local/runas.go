package local

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// DefaultRunAs is the OS user clusters run as when drill runs as root.
const DefaultRunAs = "postgres"

// RunAs is the unprivileged OS user a cluster runs as. PostgreSQL refuses to
// run as root, so when drill runs as root its clusters run as this user.
// The zero value means "as this process".
type RunAs struct {
	Name     string
	UID, GID uint32
	set      bool
}

// LookupRunAs resolves the user clusters run as. As root, name (default
// "postgres") must exist. As any other user, clusters run as that user, and
// a name naming someone else is an error: switching users needs root.
func LookupRunAs(name string) (RunAs, error) {
	if os.Geteuid() != 0 {
		if name != "" {
			if cur, err := user.Current(); err == nil && cur.Username != name {
				return RunAs{}, fmt.Errorf("run_as %q: drill runs as %q and can switch users only when run as root; remove run_as or run as %s", name, cur.Username, name)
			}
		}
		return RunAs{}, nil
	}
	if name == "" {
		name = DefaultRunAs
	}
	u, err := user.Lookup(name)
	if err != nil {
		return RunAs{}, fmt.Errorf("run_as %q: no such OS user; PostgreSQL cannot run as root, so create the user (useradd --system %s) or set target.run_as to an existing unprivileged user", name, name)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if uid == 0 {
		return RunAs{}, fmt.Errorf("run_as %q: is root; PostgreSQL refuses to run as root, name an unprivileged user", name)
	}
	return RunAs{Name: name, UID: uint32(uid), GID: uint32(gid), set: true}, nil
}

// apply makes cmd run as the user.
func (r RunAs) apply(cmd *exec.Cmd) {
	if !r.set {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.UID, Gid: r.GID}}
}

// chown gives path to the user, so the cluster can write there.
func (r RunAs) chown(path string) error {
	if !r.set {
		return nil
	}
	return os.Chown(path, int(r.UID), int(r.GID))
}
