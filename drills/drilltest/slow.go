package drilltest

import (
	"context"
	"strconv"
	"sync"
	"time"

	"drill/drills"
)

// SlowTarget wraps a Target whose instances take a while to come up, as an
// RDS instance stays "creating" for minutes: the first Waits calls of
// Provision for each instance return a drills.WaitError. Nothing on this
// host makes a real local cluster wait, so tests of the waiting and
// snoozing paths use this.
type SlowTarget struct {
	drills.Target
	Waits int
	After time.Duration

	mu    sync.Mutex
	calls map[string]int
}

// Provision asks to wait Waits times, then provisions for real.
func (s *SlowTarget) Provision(ctx context.Context, in *drills.Instance, b drills.Backup, p drills.Progress) error {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[in.ID]++
	n := s.calls[in.ID]
	s.mu.Unlock()
	if n <= s.Waits {
		in.Details["wait_calls"] = itoa(n)
		return drills.Wait(s.After, "instance creating")
	}
	return s.Target.Provision(ctx, in, b, p)
}

// Calls is how often Provision was called for instance id.
func (s *SlowTarget) Calls(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func itoa(n int) string { return strconv.Itoa(n) }
