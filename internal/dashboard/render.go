package dashboard

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// errNotFound makes a page builder's request a 404 page.
type errNotFound struct{ msg string }

func (e errNotFound) Error() string { return e.msg }

// builder returns a page's title and its content template's data.
type builder func(r *http.Request) (title string, data any, err error)

// layout is the data of the page around the content.
type layout struct {
	Title      string
	Nav        string
	ClusterURL string
	Content    template.HTML
	After      template.HTML
	Live       bool
}

// page serves a page: the whole page for a normal request, or its content
// re-rendered on every change for an EventSource.
func (s *Server) page(name string, build builder) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.servePage(w, r, name, build, "")
	}
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request, name string, build builder, after template.HTML) {
	if r.Header.Get("Accept") == "text/event-stream" {
		s.live(w, r, func() (string, error) {
			_, data, err := build(r)
			if err != nil {
				return "", err
			}
			return s.renderString(name, data)
		})
		return
	}
	title, data, err := build(r)
	var nf errNotFound
	if errors.As(err, &nf) {
		s.notFound(w, r, nf.msg)
		return
	}
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", err.Error())
		return
	}
	content, err := s.renderString(name, data)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", err.Error())
		return
	}
	s.writeLayout(w, http.StatusOK, layout{Title: title, Nav: name, Content: template.HTML(content), After: after, Live: true})
}

func (s *Server) renderString(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (s *Server) writeLayout(w http.ResponseWriter, status int, l layout) {
	l.ClusterURL = s.o.ClusterURL
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, "layout", l); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

type message struct{ Heading, Text string }

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	content, err := s.renderString("message", message{heading, text})
	if err != nil {
		http.Error(w, text, status)
		return
	}
	s.writeLayout(w, status, layout{Title: heading, Content: template.HTML(content)})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, text string) {
	s.errorPage(w, r, http.StatusNotFound, "Not found", text)
}

// live streams the content render() returns as "content" events: now, and
// again whenever the view changes (or LiveInterval passes) and the content
// differs, at most every minLiveGap. A browser that stops reading for
// writeWait is dropped; the view is never held up by it.
func (s *Server) live(w http.ResponseWriter, r *http.Request, render func() (string, error)) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	tick := time.NewTicker(s.o.LiveInterval)
	defer tick.Stop()
	last, quiet := "", time.Now()
	for {
		changed := s.view.Changed()
		html, err := render()
		var nf errNotFound
		switch {
		case errors.As(err, &nf):
			html = ""
			if err := writeEvent(rc, w, "gone", nf.msg); err != nil {
				return
			}
		case err != nil:
			s.log.Warn("dashboard: render a live page", "path", r.URL.Path, "err", err)
		case html != last:
			if err := writeEvent(rc, w, "content", html); err != nil {
				return
			}
			last, quiet = html, time.Now()
		case time.Since(quiet) > keepAlive: // a comment now and then keeps proxies from closing the stream
			rc.SetWriteDeadline(time.Now().Add(writeWait))
			if _, err := w.Write([]byte(": idle\n\n")); err != nil || rc.Flush() != nil {
				return
			}
			quiet = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(minLiveGap):
		}
	}
}

const (
	keepAlive  = 15 * time.Second
	minLiveGap = 250 * time.Millisecond
	writeWait  = 10 * time.Second
)

// writeEvent writes one server-sent event and flushes it.
func writeEvent(rc *http.ResponseController, w http.ResponseWriter, event, data string) error {
	rc.SetWriteDeadline(time.Now().Add(writeWait))
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\n", event)
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := w.Write([]byte(b.String())); err != nil {
		return err
	}
	return rc.Flush()
}

func parseTemplates() (*template.Template, error) {
	t := template.New("").Funcs(funcs)
	sub, err := fs.Sub(assets, "assets/templates")
	if err != nil {
		return nil, err
	}
	return t.ParseFS(sub, "*.html")
}
