package bench

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcsRefusesBadOptions(t *testing.T) {
	good := ProcsOptions{Producers: []int{1, 2}, Workers: []int{1}, N: 10, Concurrency: 2}
	if err := good.Check(); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	for want, o := range map[string]ProcsOptions{
		"at least one producer count": {Workers: []int{1}, N: 10, Concurrency: 1},
		"at least one":                {Producers: []int{1}, N: 10, Concurrency: 1},
		"0 processes":                 {Producers: []int{0}, Workers: []int{1}, N: 10, Concurrency: 1},
		"65 processes":                {Producers: []int{1}, Workers: []int{65}, N: 10, Concurrency: 1},
		"n 0":                         {Producers: []int{1}, Workers: []int{1}, N: 0, Concurrency: 1},
		"concurrency 0":               {Producers: []int{1}, Workers: []int{1}, N: 10, Concurrency: 0},
		"in-flight -1":                {Producers: []int{1}, Workers: []int{1}, N: 10, Concurrency: 1, InFlight: -1},
		"n 3 is fewer than 4":         {Producers: []int{1, 4}, Workers: []int{1}, N: 3, Concurrency: 1},
	} {
		err := o.Check()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want one saying %q", o, err, want)
		}
		if err := Procs(context.Background(), o, func(ProcsResult) error { t.Error("a pair ran"); return nil }); err == nil {
			t.Errorf("%+v: Procs ran", o)
		}
	}
}

// The CPU of a child process is read from /proc while it runs: a process
// that spins for a while shows it.
func TestProcCPUReadsAChildsCPU(t *testing.T) {
	spin := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30")
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { spin.Process.Kill(); spin.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for procCPU(spin) < 50*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("a spinning child shows %s of CPU after a minute", procCPU(spin))
		}
		time.Sleep(10 * time.Millisecond) // poll /proc
	}
	if f := procStat(os.Getpid()); len(f) < 15 || f[0] != strconv.Itoa(os.Getpid()) {
		t.Fatalf("/proc/self/stat fields: %q", f)
	}
}
