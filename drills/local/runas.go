package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// DefaultRunAs is the OS user the embedded state database (and, failing
// SandboxUser, throwaway clusters) run as when drill runs as root.
const DefaultRunAs = "postgres"

// SandboxUser is the OS user throwaway clusters and restore tools run as
// when drill runs as root: a user that owns nothing else on the host
// (`make install` creates it), so that what a backup makes a server do
// reaches nothing but its own cluster.
const SandboxUser = "drill-sandbox"

// LookupSandbox resolves the user throwaway clusters run as: name when
// given, else SandboxUser, else DefaultRunAs with a warning (returned as
// the second value) that says how to create SandboxUser.
func LookupSandbox(name string) (RunAs, string, error) {
	if name != "" || os.Geteuid() != 0 {
		r, err := LookupRunAs(name)
		return r, "", err
	}
	if _, err := user.Lookup(SandboxUser); err == nil {
		r, err := LookupRunAs(SandboxUser)
		return r, "", err
	}
	r, err := LookupRunAs(DefaultRunAs)
	if err != nil {
		return r, "", err
	}
	return r, fmt.Sprintf("OS user %s does not exist: throwaway clusters run as %s, which may own other things on this host; create it (make install, or useradd --system --no-create-home --shell /usr/sbin/nologin %s) or set target.run_as", SandboxUser, DefaultRunAs, SandboxUser), nil
}

// RunAs is the unprivileged OS user a cluster runs as. PostgreSQL refuses to
// run as root, so when drill runs as root its clusters run as this user.
// The zero value means "as this process".
type RunAs struct {
	Name     string
	UID, GID uint32
	// Groups are the user's supplementary groups (a repository's group,
	// say): the programs run as the user have them too.
	Groups []uint32
	set    bool
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
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && g != gid {
				groups = append(groups, uint32(g))
			}
		}
	}
	return RunAs{Name: name, UID: uint32(uid), GID: uint32(gid), Groups: groups, set: true}, nil
}

// apply makes cmd run as the user.
func (r RunAs) apply(cmd *exec.Cmd) {
	if !r.set {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Groups set, even when empty: never root's supplementary groups.
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.UID, Gid: r.GID, Groups: append([]uint32{}, r.Groups...)}
}

// attach makes cmd die with this process (a parent-death signal), in a
// process group of its own, which the command's context (if it has one)
// kills whole: a restore program or a throwaway server never outlives the
// drill that started it.
func attach(cmd *exec.Cmd, withContext bool) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = true
	if withContext {
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
}

// chown gives path to the user, so the cluster can write there.
func (r RunAs) chown(path string) error {
	if !r.set {
		return nil
	}
	return os.Chown(path, int(r.UID), int(r.GID))
}

// Command is a command that runs as the user with a clean environment
// (PATH, HOME=home, locale, time zone), and dies with this process.
func (r RunAs) Command(ctx context.Context, home, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = home, baseEnv(home)
	r.apply(cmd)
	attach(cmd, true)
	return cmd
}
