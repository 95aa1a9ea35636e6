package web

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// microcacheTTL is how long a page that is the same for everyone is
// served from memory: many viewers of the overview (or scrapers of
// /metrics) cost one rendering a second, whatever the size of the history.
const microcacheTTL = time.Second

// A value older than microcacheStaleMax (no request came for a while, or
// its refreshes failed) is loaded again before it is served; a load gets
// microcacheLoadTimeout.
const (
	microcacheStaleMax    = 2 * microcacheTTL
	microcacheLoadTimeout = 30 * time.Second
)

// memo keeps values that are the same for everyone for microcacheTTL,
// by key. Concurrent misses of one key wait for a single load; a stale
// value is served while one request's load refreshes it in the
// background, so that only the first viewer of a key waits for a load.
type memo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	// logger, when set, logs a refresh that panicked (the stale value
	// stays; the next request loads again).
	logger *slog.Logger
}

func (m *memo) logPanic(key string, p any) {
	if m.logger != nil {
		m.logger.Error("page refresh panicked", "key", strings.ReplaceAll(key, "\x00", " "), "panic", fmt.Sprint(p))
	}
}

type memoEntry struct {
	mu         sync.Mutex
	at         time.Time // when v was loaded; zero: v is not to be served again
	v          any
	refreshing bool
}

// Bounds of the cache: what a client sends cannot grow it much.
const (
	microcacheKeyMax     = 512
	microcacheEntriesMax = 100
	microcacheBodyMax    = 1 << 20
)

// get returns key's value, loading it when it is missing or older than
// microcacheStaleMax, and refreshing it in the background when it is
// older than microcacheTTL; a value load says not to keep is returned
// once. Keys longer than microcacheKeyMax are loaded, not kept. load gets
// a context of its own (the request that started it may be long gone).
func (m *memo) get(ctx context.Context, key string, load func(context.Context) (v any, keep bool)) any {
	run := func() (any, bool) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), microcacheLoadTimeout)
		defer cancel()
		return load(lctx)
	}
	if len(key) > microcacheKeyMax {
		v, _ := run()
		return v
	}
	m.mu.Lock()
	if m.entries == nil || len(m.entries) >= microcacheEntriesMax {
		m.entries = map[string]*memoEntry{} // bounded: a crawler of odd query strings
	}
	e := m.entries[key]
	if e == nil {
		e = &memoEntry{}
		m.entries[key] = e
	}
	m.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch age := time.Since(e.at); {
	case e.at.IsZero() || age > microcacheStaleMax:
		var keep bool
		e.at = time.Time{}
		e.v, keep = run()
		if keep {
			e.at = time.Now()
		}
	case age > microcacheTTL && !e.refreshing:
		e.refreshing = true
		go func() {
			var v any
			keep := false
			defer func() {
				// a panic here is no handler's: net/http would not recover it
				if p := recover(); p != nil {
					keep = false
					m.logPanic(key, p)
				}
				e.mu.Lock()
				defer e.mu.Unlock()
				e.refreshing = false
				if keep {
					e.v, e.at = v, time.Now()
				}
			}()
			v, keep = run()
		}()
	}
	return e.v
}

// clear forgets every value: what this server just changed shows at once.
func (m *memo) clear() {
	m.mu.Lock()
	m.entries = nil
	m.mu.Unlock()
}

// microcache serves next's responses to GETs of the same URL from memory
// for microcacheTTL. Only for handlers whose output does not depend on
// who asks (no CSRF token, no session): the overview, /metrics, /api/.
type microcache struct{ memo memo }

type response struct {
	status int
	header http.Header
	body   []byte
}

func (m *microcache) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.RequestURI() + "\x00" + r.Header.Get("Accept-Encoding")
		resp := m.memo.get(r.Context(), key, func(ctx context.Context) (any, bool) {
			rec := &recorder{header: http.Header{}, status: http.StatusOK}
			next.ServeHTTP(rec, r.WithContext(ctx))
			rec.header.Del("Set-Cookie") // a session is one browser's, never shared
			// Errors (a client that went away, a failed query) and big
			// bodies are served once, not kept.
			keep := rec.status == http.StatusOK && rec.body.Len() <= microcacheBodyMax && ctx.Err() == nil
			return response{rec.status, rec.header, rec.body.Bytes()}, keep
		}).(response)
		for k, v := range resp.header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.status)
		_, _ = w.Write(resp.body)
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
