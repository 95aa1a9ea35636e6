package drills

import (
	"runtime/debug"
)

// BuildRevision is the VCS revision drill was built from: rev when set
// (make build passes it), else the build info's, shortened to 12 digits,
// with "+dirty" when the work tree had changes; "" when unknown.
func BuildRevision(rev string) string {
	if rev != "" {
		return rev
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// BuildVersion is v with the revision (BuildRevision) it was built from:
// "v0.4.0 (revision 1a2b3c4d5e6f)".
func BuildVersion(v, rev string) string {
	if rev = BuildRevision(rev); rev != "" {
		return v + " (revision " + rev + ")"
	}
	return v
}

// Executor is the process that carries out a run, for the record.
type Executor struct {
	// Worker names the process (user@host, or host/pid for a worker).
	Worker string
	// Host is the machine's name.
	Host string
	// Version is drill's BuildVersion.
	Version string
}
