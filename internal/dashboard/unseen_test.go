package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/clusterview"
	"github.com/frayhq/fray/internal/dashboard"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

// A job the view has not heard of yet (submitted a moment ago, or the view
// still loading) has its page, read from the store, not a 404 saying it
// does not exist. The view here never runs, so it hears of nothing.
func TestAJobTheViewHasNotHeardOfYetHasItsPage(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := frayt.Server(t)
	_, js := frayt.Connect(t, srv.ClientURL())
	st, err := jobs.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	rec := jobs.NewRecord("/default/just-submitted", "", &jobs.JobRequest{Name: "just-submitted",
		Entrypoint: jobs.Entrypoint{Argv: []string{"sleep", "60"}}})
	if _, err := st.Put(ctx, rec, nil, 0); err != nil {
		t.Fatal(err)
	}
	d, err := dashboard.New(clusterview.New(clusterview.Options{}), js, dashboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(d)
	t.Cleanup(hs.Close)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/jobs/default/just-submitted"); code != http.StatusOK || !strings.Contains(body, "sleep 60") {
		t.Fatalf("page of a stored job the view has not heard of: %d; body:\n%s", code, tailString(body, 1000))
	}
	if code, _ := get("/jobs/default/never-submitted"); code != http.StatusNotFound {
		t.Fatalf("page of a job that does not exist: %d, want 404", code)
	}
}
