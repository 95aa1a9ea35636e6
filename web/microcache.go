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

func (m *microcache) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.RequestURI() + "\x00" + r.Header.Get("Accept-Encoding")
		m.mu.Lock()
		if m.entries == nil {
			m.entries = map[string]*cached{}
		}
		if len(m.entries) > 1000 { // bounded: a crawler of odd query strings
			m.entries = map[string]*cached{}
		}
		e := m.entries[key]
		if e == nil {
			e = &cached{}
			m.entries[key] = e
		}
		m.mu.Unlock()

		e.mu.Lock()
		if time.Since(e.at) > microcacheTTL {
			rec := &recorder{header: http.Header{}, status: http.StatusOK}
			next.ServeHTTP(rec, r)
			rec.header.Del("Set-Cookie") // a session is one browser's, never shared
			e.status, e.header, e.body = rec.status, rec.header, rec.body.Bytes()
			e.at = time.Now()
			if e.status != http.StatusOK {
				e.at = time.Time{} // errors are not kept
			}
		}
		status, header, body := e.status, e.header, e.body
		e.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
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
