package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/integration/backends"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/observe/observetest"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/worker"
)

// browser is a headless Chromium that records console errors.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T, parent context.Context) *browser {
	t.Helper()
	path, err := frayt.Chromium(parent)
	if err != nil {
		t.Fatalf("the dashboard tests need Chromium: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1360, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	lctx, stopListen := context.WithCancel(ctx)
	messages := chromedp.Console(lctx)
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s: %s (%s)", m.Type, m.Text, m.URL))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { stopListen(); <-listened; cancel(); cancelAlloc() })
	return b
}

// do runs steps within 30 s.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// noErrors fails the test if any page logged an error so far.
func (b *browser) noErrors(t *testing.T, where string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		t.Fatalf("console errors on %s:\n%s", where, strings.Join(b.errors, "\n"))
	}
}

// until waits until the JavaScript expression is true.
func (b *browser) until(t *testing.T, what, expr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			cancel()
			t.Fatalf("%s: %s never held (last error %v); the page's main is:\n%s", what, expr, err, tailString(html, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// screenshot writes the page as .build/ui/<name>.png under the module root.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	root, err := backends.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".build", "ui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startDashboard runs a local cluster with one worker and its dashboard.
func startDashboard(t *testing.T, ctx context.Context) (base string, c *fray.Client) {
	t.Helper()
	cl := observetest.Start(t, ctx, worker.Options{Concurrency: 2})
	return cl.UIURL, cl.Client
}

func TestDashboardFollowsAJobLiveInChromium(t *testing.T) {
	ctx := frayt.Context(t, 3*time.Minute)
	base, c := startDashboard(t, ctx)
	b := newBrowser(t, ctx)

	// The empty cluster's pages say what to do.
	b.do(t, "open the overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".cards")))
	b.until(t, "the overview lists the pool", `document.querySelector("main").innerText.includes("default")`, 20*time.Second)
	b.screenshot(t, "overview-empty")
	b.do(t, "open the jobs list", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible(chromedp.CSS(".empty")))
	b.until(t, "the live stream connects", `document.getElementById("live").classList.contains("on")`, 10*time.Second)
	b.until(t, "mark the page", `(window.__notReloaded = true)`, 5*time.Second)

	// Submitted while the list is open: it appears without a reload.
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "ticker", Entrypoint: jobs.Entrypoint{
		Argv: []string{"sh", "-c", `for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 1; done`}}})
	if err != nil {
		t.Fatal(err)
	}
	link := `a[href="/jobs/default/ticker"]`
	b.until(t, "the job appears in the list", `!!document.querySelector('`+link+`') && window.__notReloaded === true`, 20*time.Second)
	b.screenshot(t, "jobs")
	b.do(t, "open the job", chromedp.Click(chromedp.CSS(link)), chromedp.WaitVisible(chromedp.CSS("#log")))
	b.until(t, "mark the job page", `(window.__notReloaded = true)`, 5*time.Second)

	// Lines arrive while it runs, then SUCCEEDED shows without a reload.
	b.until(t, "log lines arrive while the job runs",
		`document.querySelectorAll("#log .ln").length >= 2 && document.getElementById("job-state").textContent.trim() === "RUNNING"`, 30*time.Second)
	b.screenshot(t, "job-running")
	b.until(t, "the job shows SUCCEEDED without a reload",
		`document.getElementById("job-state").textContent.trim() === "SUCCEEDED" && window.__notReloaded === true`, 30*time.Second)
	b.until(t, "every line arrived", `document.querySelectorAll("#log .ln").length === 6 && document.getElementById("log").innerText.includes("tick 6")`, 10*time.Second)
	b.screenshot(t, "job-succeeded")
	if r, err := h.Info(ctx); err != nil || r.Status != jobs.StatusSucceeded {
		t.Fatalf("job: %v %v", r, err)
	}
	b.noErrors(t, "the jobs list and the job page")

	// Fill the other pages: an actor, a failed task, a running job.
	if _, err := c.CreateActor(ctx, actors.ClassCounter, "counter-1", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx, "fray.sleep", "not a number").Get(ctx, nil); err == nil {
		t.Fatal("fray.sleep with a string succeeded")
	}
	if _, err := c.Submit(ctx, jobs.JobRequest{Name: "sleeper", Entrypoint: jobs.Entrypoint{Argv: []string{"sleep", "60"}}}); err != nil {
		t.Fatal(err)
	}
	pages := []struct{ path, ready, name string }{
		{"/", `document.querySelectorAll(".spark path").length > 0`, "overview"},
		{"/jobs", `document.querySelectorAll("table.jobs tbody tr").length === 2`, "jobs-two"},
		{"/jobs?state=SUCCEEDED", `document.querySelectorAll("table.jobs tbody tr").length === 1`, "jobs-filtered"},
		{"/workers", `document.querySelector("main").innerText.includes("local-0")`, "workers"},
		{"/actors", `document.querySelector("main").innerText.includes("counter-1")`, "actors"},
		{"/failures", `document.querySelector("main").innerText.includes("fray.sleep")`, "failures"},
		{"/jobs/default/sleeper", `document.getElementById("job-state").textContent.trim() === "RUNNING"`, "job-sleeper"},
	}
	for _, p := range pages {
		b.do(t, "open "+p.path, chromedp.Navigate(base+p.path), chromedp.WaitReady(chromedp.CSS("body")))
		b.until(t, p.path+" shows its content", p.ready, 20*time.Second)
		b.screenshot(t, p.name)
		b.noErrors(t, p.path)
	}
	b.until(t, "the running job has a stop button", `document.querySelectorAll('form[action="/actions/stop-job"] button').length === 1`, 5*time.Second)
}

func TestDashboardUnknownJobIsA404Page(t *testing.T) {
	ctx := frayt.Context(t, time.Minute)
	base, _ := startDashboard(t, ctx)
	for _, path := range []string{"/jobs/default/no-such-job", "/jobs/default/no-such-job?log=1", "/no-such-page"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "Not found") {
			t.Errorf("GET %s: %d, want 404 with a page saying so; body:\n%s", path, resp.StatusCode, tailString(string(body), 500))
		}
	}
}

// csrfToken reads the token the page's forms carry.
func csrfToken(t *testing.T, page string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, `name="csrf" value="`)
	if !ok {
		t.Fatalf("no CSRF token in the page:\n%s", tailString(page, 2000))
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

func TestDashboardActionsNeedTheCSRFToken(t *testing.T) {
	ctx := frayt.Context(t, 2*time.Minute)
	base, c := startDashboard(t, ctx)
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "to-stop", Entrypoint: jobs.Entrypoint{Argv: []string{"sleep", "60"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateActor(ctx, actors.ClassCounter, "to-shut", 0); err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) int {
		resp, err := noRedirect.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/actions/stop-job", url.Values{"id": {h.ID()}}); code != http.StatusForbidden {
		t.Fatalf("stop without a CSRF token: %d, want 403", code)
	}
	if code := post("/actions/stop-job", url.Values{"id": {h.ID()}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("stop with a wrong CSRF token: %d, want 403", code)
	}
	if st, _ := h.Status(ctx); st.Terminal() {
		t.Fatalf("a refused stop stopped the job: %s", st.Status)
	}
	resp, err := http.Get(base + jobURLOf(h.ID()))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := csrfToken(t, string(page))
	if code := post("/actions/stop-job", url.Values{"id": {h.ID()}, "csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("stop with the page's token: %d, want 303 back to the job", code)
	}
	if st, _ := h.Status(ctx); st.Status != jobs.StatusStopped {
		t.Fatalf("job after the stop button: %s, want STOPPED", st.Status)
	}
	if code := post("/actions/shutdown-actor", url.Values{"namespace": {"default"}, "name": {"to-shut"}, "csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("shut down with the token: %d, want 303", code)
	}
	recs, err := c.ListActors(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Name == "to-shut" && r.State != actors.StateStopped {
			t.Fatalf("actor after the shut-down button: %s, want stopped", r.State)
		}
	}
}

func jobURLOf(id string) string { return "/jobs" + id }

// sseEvents reads server-sent events from url until want of them arrived.
func sseEvents(t *testing.T, ctx context.Context, url string, want int) (events, data []string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	ev, buf := "", []string{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			buf = append(buf, strings.TrimPrefix(line, "data: "))
		case line == "" && ev != "":
			events, data = append(events, ev), append(data, strings.Join(buf, "\n"))
			ev, buf = "", nil
			if len(events) == want {
				return events, data
			}
		}
	}
	t.Fatalf("%s: the stream ended after events %v: %v", url, events, sc.Err())
	return nil, nil
}

func TestDashboardLogStartsFromTheTailOfALongLog(t *testing.T) {
	ctx := frayt.Context(t, 2*time.Minute)
	base, c := startDashboard(t, ctx)
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "chatty", Entrypoint: jobs.Entrypoint{Argv: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Wait(ctx, jobs.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	// 300 batches of one line each, after whatever the job wrote (nothing).
	lw := jobs.NewLogWriter(c.JetStream(), h.ID(), 0, 1)
	for i := range 300 {
		if err := lw.Line(ctx, fmt.Sprint("line ", i)); err != nil {
			t.Fatal(err)
		}
		if err := lw.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	events, data := sseEvents(t, ctx, base+jobURLOf(h.ID())+"?log=1", 3)
	if events[0] != "open" || events[1] != "skipped" || events[2] != "lines" {
		t.Fatalf("events %v, want open, skipped, lines", events)
	}
	if data[1] != `{"batches":100}` {
		t.Fatalf("skipped %s, want the 100 batches before the last 200", data[1])
	}
	var lines []struct {
		N    int64  `json:"n"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(data[2]), &lines); err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || lines[0].Text != "line 100" {
		t.Fatalf("first line sent %+v, want line 100", lines[:min(len(lines), 1)])
	}
}
