// Package web serves drill history, schedules and run details as HTML
// pages and JSON, plus /healthz, /metrics and river's UI. Pages are
// rendered on the server from embedded templates; they need no JavaScript.
package web

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/statedb"
)

// Server is the web interface of one drill installation.
type Server struct {
	Store  *statedb.Store
	Config *drills.Config
	// Live, when set, is the config in force (serve reloads it); Config
	// is then unused.
	Live   *drills.LiveConfig
	Logger *slog.Logger
	// Enqueue queues a run of a drill (Run now, the API). Nil disables both.
	Enqueue func(ctx context.Context, spec *drills.Spec, trigger drills.Trigger, who string) (*drills.Run, error)
	// Token, when set, is required on every request but /healthz: as a
	// bearer token, or as the password of basic auth (any user name).
	Token string
	// EvidenceKey signs evidence bundles downloaded from the page (optional).
	EvidenceKey ed25519.PrivateKey
	// TrustedUserHeader, when set, names the header an authenticating
	// proxy in front of drill sets to the signed-in user (such as
	// X-Forwarded-User): runs started from the page record that person.
	// Set it only behind such a proxy: anyone else could send the header.
	TrustedUserHeader string
	// RiverUI, when set, is mounted at /riverui/ behind the same auth.
	RiverUI http.Handler
	Version string
	// Now is the clock (default time.Now).
	Now func() time.Time

	csrfKey []byte
	// pageData keeps what pages that carry a per-session token show
	// for everyone, a second at a time.
	pageData memo
	// pages keeps whole responses that are the same for everyone.
	pages microcache
	// csrfPlaceholder stands for the viewer's CSRF token in prerendered
	// pages.
	csrfPlaceholder string
}

// changed drops every cached page and page data: what this server just
// did (a run queued, a sign-off) shows at once.
func (s *Server) changed() {
	s.pageData.clear()
	s.pages.memo.clear()
}

// Handler returns the HTTP handler of the whole interface.
func (s *Server) Handler() http.Handler {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.csrfKey = make([]byte, 32)
	_, _ = rand.Read(s.csrfKey)
	s.csrfPlaceholder = "csrf-placeholder-" + rand.Text() // never sent: replaced by each viewer's token

	mux := http.NewServeMux()
	mc := &s.pages
	mc.memo.logger, s.pageData.logger = s.Logger, s.Logger
	mux.Handle("GET /{$}", mc.wrap(s.page(s.overview)))
	mux.HandleFunc("GET /drills/{name}", s.page(s.drillPage))
	mux.HandleFunc("POST /drills/{name}/run", s.runNow)
	mux.HandleFunc("GET /runs/{id}", s.page(s.runPage))
	mux.HandleFunc("POST /runs/{id}/signoff", s.signoff)
	mux.HandleFunc("GET /schedule", s.page(s.schedulePage))
	mux.HandleFunc("GET /evidence.zip", s.evidence)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(staticFS)))
	mux.Handle("GET /api/drills", mc.wrap(http.HandlerFunc(s.apiDrills)))
	mux.Handle("GET /api/runs", mc.wrap(http.HandlerFunc(s.apiRuns)))
	mux.Handle("GET /api/runs/{id}", mc.wrap(http.HandlerFunc(s.apiRun)))
	mux.HandleFunc("POST /api/drills/{name}/runs", s.apiEnqueue)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", mc.wrap(s.metricsHandler()))
	if s.RiverUI != nil {
		mux.Handle("/riverui/", s.RiverUI)
	}
	var h http.Handler = mux
	h = http.NewCrossOriginProtection().Handler(h) // no state change from another site's page
	h = s.auth(h)
	h = securityHeaders(h)
	h = s.logRequests(h)
	return h
}

// securityHeaders forbids framing, sniffing and any script on drill's own pages.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, "/riverui/") {
			h.Set("Content-Security-Policy", "frame-ancestors 'none'") // river's UI brings its own scripts
		} else {
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		}
		next.ServeHTTP(w, r)
	})
}

// auth requires the token on everything but /healthz when one is set.
// Without a token (a server on a loopback address only), it accepts only
// requests that name a loopback host: a page of another site whose name
// resolves to 127.0.0.1 (DNS rebinding) sends its own name and is refused.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.Token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" && !LoopbackHost(r.Host) {
				http.Error(w, "misdirected request: without DRILL_WEB_TOKEN, drill answers only to localhost, 127.0.0.1 and [::1]", http.StatusMisdirectedRequest)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	want := []byte(s.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		var got string
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = bearer
		} else if _, pass, ok := r.BasicAuth(); ok {
			got = pass
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="drill", charset="UTF-8"`)
			http.Error(w, "authentication required: the password is DRILL_WEB_TOKEN", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// who names the person behind a request that starts a run: the user of a
// trusted proxy's header, else the basic-auth user name, else how (web,
// api) and from where.
func (s *Server) who(r *http.Request, how string) string {
	if h := s.TrustedUserHeader; h != "" {
		if u := strings.TrimSpace(r.Header.Get(h)); u != "" && len(u) <= 200 {
			return u
		}
	}
	if u := s.knownPerson(r); u != "" {
		return u + " (" + how + ")"
	}
	return how + "@" + clientHost(r)
}

// clientHost is the address a request came from, without its port: a
// person's identity in the record, not a connection's.
func clientHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// config is the config in force.
func (s *Server) config() *drills.Config {
	if s.Live != nil {
		return s.Live.Get()
	}
	return s.Config
}

// fromTrustedProxy says the request names its user in the trusted
// proxy's header: a person the proxy signed in.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	if h := s.TrustedUserHeader; h != "" {
		u := strings.TrimSpace(r.Header.Get(h))
		return u != "" && len(u) <= 200
	}
	return false
}

// knownPerson is the person the request comes from when the server knows:
// a trusted proxy's user, or the basic-auth user; else "".
func (s *Server) knownPerson(r *http.Request) string {
	if h := s.TrustedUserHeader; h != "" {
		if u := strings.TrimSpace(r.Header.Get(h)); u != "" && len(u) <= 200 {
			return u
		}
	}
	if u, _, ok := r.BasicAuth(); ok && s.Token != "" && strings.TrimSpace(u) != "" && len(u) <= 200 {
		return u
	}
	return ""
}

// LoopbackHost reports whether a Host header (with or without a port)
// names this machine's loopback interface: localhost, 127.0.0.1 or [::1].
func LoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	switch strings.ToLower(strings.TrimSuffix(host, ".")) {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type ctxKey int

const requestIDKey ctxKey = 0

// logRequests logs every request as one line with its request id (taken
// from X-Request-Id when present), and echoes the id.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
		s.Logger.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}

// sessionCookie ties a browser to its CSRF tokens.
const sessionCookie = "drill_session"

// csrfToken returns the CSRF token of the browser's session, starting a
// session when there is none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	sid := ""
	if err == nil && len(c.Value) >= 32 {
		sid = c.Value
	} else {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		sid = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	}
	return s.sign(sid)
}

func (s *Server) sign(sid string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("csrf:" + sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF checks the csrf_token form field against the session cookie.
func (s *Server) validCSRF(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	got := r.PostFormValue("csrf_token")
	return got != "" && hmac.Equal([]byte(got), []byte(s.sign(c.Value)))
}

// IsLoopback reports whether a listen address binds to loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
