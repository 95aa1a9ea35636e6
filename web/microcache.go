package web

import (
	"bytes"
	"net/http"
	"sync"
	"time"
)

// microcacheTTL is how long a page that is the same for everyone is
// served from memory: many viewers of the overview (or scrapers of
// /metrics) cost one rendering a second, whatever the size of the history.
const microcacheTTL = time.Second

// microcache serves next's responses to GETs of the same URL from memory
// for microcacheTTL. Only for handlers whose output does not depend on
// who asks (no CSRF token, no session): the overview, /metrics, /api/.
// Concurrent misses of one URL wait for a single rendering.
type microcache struct {
	mu      sync.Mutex
	entries map[string]*cached
}

type cached struct {
	mu     sync.Mutex
	at     time.Time
	status int
	header http.Header
	body   []byte
}

// Bounds of the cache: what a client sends cannot grow it much.
const (
	microcacheKeyMax     = 512
	microcacheEntriesMax = 100
	microcacheBodyMax    = 1 << 20
)

func (m *microcache) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.RequestURI() + "\x00" + r.Header.Get("Accept-Encoding")
		if len(key) > microcacheKeyMax {
			next.ServeHTTP(w, r) // an odd URL is served, not kept
			return
		}
		m.mu.Lock()
		if m.entries == nil || len(m.entries) >= microcacheEntriesMax {
			m.entries = map[string]*cached{} // bounded: a crawler of odd query strings
		}
		e := m.entries[key]
		if e == nil {
			e = &cached{}
			m.entries[key] = e
		}
		m.mu.Unlock()

		status, header, body := e.get(next, r)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// get returns the entry's response, rendering it when it is stale. The
// lock is released whatever the handler does (a panic included).
func (e *cached) get(next http.Handler, r *http.Request) (int, http.Header, []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Since(e.at) > microcacheTTL {
		e.at = time.Time{}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		rec.header.Del("Set-Cookie") // a session is one browser's, never shared
		e.status, e.header, e.body = rec.status, rec.header, rec.body.Bytes()
		// Errors (a client that went away, a failed query) and big bodies
		// are served once, not kept.
		if e.status == http.StatusOK && len(e.body) <= microcacheBodyMax && r.Context().Err() == nil {
			e.at = time.Now()
		}
	}
	return e.status, e.header, e.body
}

// recorder keeps a response in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
