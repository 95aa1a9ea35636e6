package drills

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"drill/verify"
)

// DefaultTimeout bounds one drill when the spec sets no timeout.
const DefaultTimeout = 2 * time.Hour

// Config is a parsed drill.yaml.
type Config struct {
	// Path is the file the config was read from.
	Path string `json:"-"`
	// DatabaseURL is the state database; empty means the embedded one.
	// It may hold a password: never log or render it.
	DatabaseURL string `json:"-"`
	// Notify are webhooks told about every drill's failures and overdue drills.
	Notify []Notify `json:"-"`
	// OverdueGrace is how long past one schedule period a drill may go
	// without success before it is overdue (default 1 day).
	OverdueGrace time.Duration `json:"overdue_grace"`
	Drills       []*Spec       `json:"drills"`
	// HistoryOnly: only DatabaseURL was read (the drills could not be
	// loaded in this environment), for commands that read the history.
	HistoryOnly bool `json:"-"`
}

// DefaultOverdueGrace is the grace before a scheduled drill is overdue.
const DefaultOverdueGrace = 24 * time.Hour

// Notify is a webhook. Its URL is a secret (chat webhooks carry their
// credentials in the URL): it is never logged, stored or rendered.
type Notify struct {
	Webhook string
}

// Drill returns the drill called name, or nil.
func (c *Config) Drill(name string) *Spec {
	for _, s := range c.Drills {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Timetable is the drill's parsed schedule, or nil when it has none. The
// schedule of a drill from the config is valid (validation parsed it;
// ParseSchedule keeps each parse, so this is a lookup); one in a Spec
// built by hand that does not parse is no schedule.
func (s *Spec) Timetable() *Schedule {
	if s.Schedule == "" {
		return nil
	}
	sched, err := ParseSchedule(s.Schedule, s.ScheduleTimezone)
	if err != nil {
		return nil
	}
	return sched
}

// Spec is one drill: where its backups are, where to restore them, what to
// verify and which objectives to meet.
type Spec struct {
	Name             string         `json:"name"`
	Schedule         string         `json:"schedule,omitempty"`
	ScheduleTimezone string         `json:"schedule_timezone,omitempty"`
	Timeout          time.Duration  `json:"-"`
	Source           SourceSpec     `json:"source"`
	Target           TargetSpec     `json:"target"`
	Objectives       Objectives     `json:"-"`
	Checks           []verify.Check `json:"checks"`
	// Notify are the webhooks of this drill, the config's own included.
	Notify []Notify `json:"-"`
	// Tags group drills for drill run --tag.
	Tags []string `json:"tags,omitempty"`
	// Controls are the compliance controls the drill evidences (default:
	// DefaultControls).
	Controls []string `json:"controls,omitempty"`
	// VerifyJobs is how many checks run side by side (default VerifyJobs;
	// 1 runs them one after another in config order).
	VerifyJobs int `json:"-"`
	// Line is where the drill starts in its config file.
	Line int `json:"-"`
}

// Objectives are the recovery objectives a drill must meet. Zero means none.
type Objectives struct {
	RTO time.Duration
	RPO time.Duration
}

// Check is a verification of a restored database (see package verify).
type Check = verify.Check

// CheckResult is the outcome of one Check.
type CheckResult = verify.Result

// TableResult is one table's finding of a check.
type TableResult = verify.TableResult

// nameRE is the drill name rule. Names become parts of instance ids, so they
// also follow RDS's identifier rules: no double or trailing hyphen, and at
// most 40 characters.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// ValidName checks a drill name against the rule of nameRE.
func ValidName(s string) error {
	switch {
	case !nameRE.MatchString(s):
		return fmt.Errorf("drill name %q: use lower-case letters, digits and hyphens, starting with a letter or digit", s)
	case len(s) > 40:
		return fmt.Errorf("drill name %q: at most 40 characters", s)
	case strings.Contains(s, "--") || strings.HasSuffix(s, "-"):
		return fmt.Errorf("drill name %q: no double hyphen and no hyphen at the end", s)
	}
	return nil
}
