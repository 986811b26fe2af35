// Package dashboard is fray's web dashboard: plain server-rendered HTML
// pages a person can bookmark and share (overview, jobs, a job with its
// live log, workers, actors, recent task failures), kept live by
// server-sent events. It reads a clusterview.View (memory only) and, for a
// job's log, an ordered consumer of FRAY_LOGS; it writes nothing unless
// Options.Actions is set (stop a job, shut down an actor, each a POST with
// a CSRF token).
//
// Every page answers two ways on the same URL: a normal request gets the
// page; an EventSource request (Accept: text/event-stream) gets the page's
// content again, re-rendered, each time the view changes. The assets (one
// stylesheet, one small script, no libraries) are embedded with go:embed.
//
//	srv, err := dashboard.New(view, nc, js, dashboard.Options{ClusterURL: url})
//	http.Serve(listener, srv)
package dashboard
