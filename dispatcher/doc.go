// Package dispatcher places submitted jobs on a backend — fray's own workers
// (native, with gang placement) or an external Ray or Iris cluster — and
// mirrors the backend's status and logs back into JetStream, so a job handle
// looks the same whatever runs it.
package dispatcher
