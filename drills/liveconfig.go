package drills

import "sync/atomic"

// LiveConfig is a config that a long-running process (serve, worker)
// replaces when its file changes: readers always see a whole config, the
// old one or the new.
type LiveConfig struct{ p atomic.Pointer[Config] }

// NewLiveConfig holds c.
func NewLiveConfig(c *Config) *LiveConfig {
	l := &LiveConfig{}
	l.p.Store(c)
	return l
}

// Get returns the config in force.
func (l *LiveConfig) Get() *Config { return l.p.Load() }

// Set puts c in force.
func (l *LiveConfig) Set(c *Config) { l.p.Store(c) }
