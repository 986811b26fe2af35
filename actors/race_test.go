package actors

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	raceChildEnv = "FRAY_ACTORS_TEST_RACE_URL"
	raceStartEnv = "FRAY_ACTORS_TEST_RACE_START"
	raceN        = 25 // goroutines per process
)

// raceGetOrCreate runs raceN goroutines that all CreateActor(GetIfExists)
// the same name at start and report the instance id each one reaches.
func raceGetOrCreate(c *Client, start time.Time) ([]string, error) {
	time.Sleep(time.Until(start)) // line the two processes up
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := make([]string, raceN)
	errs := make([]error, raceN)
	var wg sync.WaitGroup
	for i := range raceN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := c.CreateActor(ctx, ClassCounter, "contended", 0, GetIfExists())
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = h.Call(ctx, "ID", nil).Get(ctx, &ids[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// raceChild is the second process of the race test (the test binary
// re-executed): it prints one instance id per line.
func raceChild() int {
	nc, err := nats.Connect(os.Getenv(raceChildEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c, err := NewClient(context.Background(), nc, js, ClientOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	ns, _ := strconv.ParseInt(os.Getenv(raceStartEnv), 10, 64)
	ids, err := raceGetOrCreate(c, time.Unix(0, ns))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, id := range ids {
		fmt.Println(id)
	}
	return 0
}

func TestFiftyGetIfExistsCreatorsInTwoProcessesShareOneInstance(t *testing.T) {
	srv := frayt.Server(t)
	reg := testRegistry(t)
	startWorker(t, srv.ClientURL(), "wa", nil, reg)
	startWorker(t, srv.ClientURL(), "wb", nil, reg)
	c := newClient(t, srv.ClientURL())
	start := time.Now().Add(1500 * time.Millisecond)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), raceChildEnv+"="+srv.ClientURL(), raceStartEnv+"="+strconv.FormatInt(start.UnixNano(), 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ids, err := raceGetOrCreate(c, start)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		ids = append(ids, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v", err)
	}
	if len(ids) != 2*raceN {
		t.Fatalf("%d ids, want %d", len(ids), 2*raceN)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("two instances: %s and %s", ids[0], id)
		}
	}
	recs, err := c.ListActors(frayt.Context(t, 5*time.Second), "default")
	if err != nil || len(recs) != 1 || recs[0].Epoch != 1 {
		t.Fatalf("registry: %v %v", recs, err)
	}
}
