package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/frayhq/fray/internal/clusterview"
	"github.com/nats-io/nats.go/jetstream"
)

//go:embed assets
var assets embed.FS

// Actions are the writes the dashboard may make when Options.Actions is
// set.
type Actions interface {
	// StopJob asks for job id to stop and waits (within ctx) until it has.
	StopJob(ctx context.Context, id string) error
	// ShutdownActor shuts actor ns/name down.
	ShutdownActor(ctx context.Context, ns, name string) error
}

// Options configures the dashboard. Every field has a default.
type Options struct {
	// ClusterURL is shown in the header and in the hints of empty pages.
	ClusterURL string
	// Actions, if set, adds stop-job and shut-down-actor buttons. Without
	// it the dashboard is read-only.
	Actions Actions
	// Token, if set, must be presented once as ?token=… (it is then kept
	// in a cookie) or as "Authorization: Bearer …".
	Token string
	// LiveInterval is the longest a live page goes without a re-render
	// (ages and rates move even when nothing else does). Defaults to 2 s.
	LiveInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server serves the dashboard. It is an http.Handler.
type Server struct {
	o     Options
	view  *clusterview.View
	js    jetstream.JetStream
	log   *slog.Logger
	tmpl  *template.Template
	csrf  string
	mux   *http.ServeMux
	start time.Time
}

// New makes a dashboard over view; js reads job logs.
func New(view *clusterview.View, js jetstream.JetStream, o Options) (*Server, error) {
	if o.LiveInterval <= 0 {
		o.LiveInterval = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	t, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	s := &Server{o: o, view: view, js: js, log: o.Logger, tmpl: t, csrf: hex.EncodeToString(b), mux: http.NewServeMux(), start: time.Now()}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheAssets(http.FileServer(http.FS(static)))))
	s.mux.HandleFunc("GET /{$}", s.page("overview", s.overview))
	s.mux.HandleFunc("GET /jobs", s.page("jobs", s.jobsPage))
	s.mux.HandleFunc("GET /jobs/{id...}", s.jobOrLog)
	s.mux.HandleFunc("GET /workers", s.page("workers", s.workersPage))
	s.mux.HandleFunc("GET /actors", s.page("actors", s.actorsPage))
	s.mux.HandleFunc("GET /failures", s.page("failures", s.failuresPage))
	s.mux.HandleFunc("POST /actions/stop-job", s.stopJob)
	s.mux.HandleFunc("POST /actions/shutdown-actor", s.shutdownActor)
	s.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.notFound(w, r, "There is no page at "+r.URL.Path+".")
	})
	return s, nil
}

// cacheAssets lets browsers keep the embedded assets for an hour.
func cacheAssets(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP checks the token (when one is set) and serves the page.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	if s.o.Token != "" && !strings.HasPrefix(r.URL.Path, "/static/") && !s.authorized(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

const tokenCookie = "fray_dashboard"

// authorized reports whether r carries the token; a ?token= query that
// matches sets the cookie and redirects to the same URL without it.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	eq := func(got string) bool { return subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) == 1 }
	if c, err := r.Cookie(tokenCookie); err == nil && eq(c.Value) {
		return true
	}
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(h) {
		return true
	}
	if q := r.URL.Query(); q.Has("token") && eq(q.Get("token")) {
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.o.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("fray dashboard: this dashboard needs its token. Open the URL it printed at start, which ends in ?token=…\n"))
	return false
}

// checkPost enforces the CSRF token and, when the browser says, the same
// origin.
func (s *Server) checkPost(w http.ResponseWriter, r *http.Request) bool {
	if s.o.Actions == nil {
		s.errorPage(w, r, http.StatusForbidden, "Read-only dashboard", "This dashboard was started without --ui-actions, so it cannot change anything.")
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			s.errorPage(w, r, http.StatusForbidden, "Refused", "The request came from another site ("+o+").")
			return false
		}
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
		s.errorPage(w, r, http.StatusForbidden, "Refused", "The form's token is missing or stale: reload the page and try again.")
		return false
	}
	return true
}

func (s *Server) stopJob(w http.ResponseWriter, r *http.Request) {
	if !s.checkPost(w, r) {
		return
	}
	id := r.PostFormValue("id")
	if s.job(r.Context(), id) == nil {
		s.notFound(w, r, "There is no job "+id+".")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.o.Actions.StopJob(ctx, id); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.errorPage(w, r, http.StatusBadGateway, "Could not stop the job", err.Error())
		return
	}
	http.Redirect(w, r, jobURL(id), http.StatusSeeOther)
}

func (s *Server) shutdownActor(w http.ResponseWriter, r *http.Request) {
	if !s.checkPost(w, r) {
		return
	}
	ns, name := r.PostFormValue("namespace"), r.PostFormValue("name")
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := s.o.Actions.ShutdownActor(ctx, ns, name); err != nil {
		s.errorPage(w, r, http.StatusBadGateway, "Could not shut the actor down", err.Error())
		return
	}
	http.Redirect(w, r, "/actors", http.StatusSeeOther)
}

// jobURL is the page of job id ("/ns/name" → "/jobs/ns/name").
func jobURL(id string) string {
	parts := strings.Split(strings.TrimPrefix(id, "/"), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/jobs/" + strings.Join(parts, "/")
}
