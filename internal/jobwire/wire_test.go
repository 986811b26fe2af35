package jobwire

import "testing"

func TestEventSubjectsNameTheirWorkerAndJob(t *testing.T) {
	for _, c := range []struct{ worker, job string }{{"w1", "/default/a"}, {"host.x", "/ns/llama-3.1/child"}} {
		w, j, ok := ParseEventSubject(EventSubject(c.worker, c.job))
		if !ok || w != WorkerToken(c.worker) || j != Token(c.job) {
			t.Errorf("ParseEventSubject(EventSubject(%q, %q)) = %q, %q, %v", c.worker, c.job, w, j, ok)
		}
	}
	if w, j, ok := ParseEventSubject(SubjectEventsPrefix + Token("/default/a")); !ok || w != "" || j != "default/a" {
		t.Errorf("layout 1: %q, %q, %v", w, j, ok)
	}
	for _, bad := range []string{"fray.jobs.events.", "fray.jobs.events.w1.", "fray.jobs.events..j", "fray.jobs.events.w.j.x", "fray.jobs.ctl.j"} {
		if _, _, ok := ParseEventSubject(bad); ok {
			t.Errorf("ParseEventSubject(%q) ok", bad)
		}
	}
	if got := WorkerLogSubject("/default/a", 2, "w1"); got != "fray.logs.default/a.2.w1" {
		t.Errorf("WorkerLogSubject = %q", got)
	}
}
