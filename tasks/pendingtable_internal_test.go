package tasks

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/frayhq/fray/internal/taskwire"
)

// The pending table finds every future it holds by number, whatever the
// order results arrive in and however far apart the numbers pending at
// once are (the ring grows with batches, and a long task's future moves
// aside), and forgets those removed.
func TestThePendingTableFindsEachFutureItHoldsByNumber(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tab pendingTable
	held := map[uint64]*Future{}
	var seq uint64
	check := func(step int) {
		t.Helper()
		if tab.n != len(held) || len(tab.all()) != len(held) {
			t.Fatalf("step %d: table holds %d (%d listed), want %d", step, tab.n, len(tab.all()), len(held))
		}
		for s, f := range held {
			if got := tab.get(s); got != f {
				t.Fatalf("step %d: future %d: got %v", step, s, got)
			}
		}
	}
	long := map[uint64]bool{} // long tasks: their results come at the end
	submit := func() {
		seq++
		f := &Future{seq: seq}
		tab.put(f)
		held[seq] = f
		if rng.IntN(200) == 0 {
			long[seq] = true
		}
	}
	remove := func(s uint64) {
		if f := held[s]; f != nil && !long[s] {
			tab.remove(f)
			delete(held, s)
		}
	}
	low := uint64(1) // no number under it is held
	for step := range 20000 {
		for low <= seq && (held[low] == nil || long[low]) {
			low++
		}
		switch r := rng.IntN(100); {
		case r < 45 || low > seq: // a submission
			submit()
		case r < 90: // the oldest one's result: most arrive in order
			remove(low)
		case r < 98: // any one's result
			remove(low + rng.Uint64N(seq-low+1))
		case r < 99: // a batch submitted at once
			for range rng.IntN(3000) {
				submit()
			}
		default: // a batch's results, in order
			for n := rng.IntN(3000); n > 0 && low <= seq; low++ {
				if held[low] != nil && !long[low] {
					remove(low)
					n--
				}
			}
		}
		if step%1000 == 0 {
			check(step)
		}
		if got := tab.get(seq + 1); got != nil {
			t.Fatalf("step %d: a number never submitted found %v", step, got)
		}
	}
	check(-1)
	if len(tab.ring) <= minRing || len(tab.older) == 0 {
		t.Fatalf("ring of %d, %d moved aside: the run must grow the ring and move old futures aside", len(tab.ring), len(tab.older))
	}
	clear(long)
	for s := range held {
		remove(s)
	}
	check(-2)
}

// A producer's task ids are its prefix and its task's number, in base 62
// without leading zeros: a result's id gives back its task's number, and
// an id of another producer's, or no id of fray's, gives none.
func TestTaskIDsNumberTheProducersTasks(t *testing.T) {
	a, b := newIDPrefix(), newIDPrefix()
	if a == b || len(a) != idPrefixLen {
		t.Fatalf("prefixes %q and %q: want two distinct of %d characters", a, b, idPrefixLen)
	}
	seen := map[string]bool{}
	for _, c := range []struct {
		seq    uint64
		digits string
	}{{0, "0"}, {1, "1"}, {61, "z"}, {62, "10"}, {3843, "zz"}, {12345, "3D7"}, {1 << 32, "4gfFC4"}, {839299365868340223, "zzzzzzzzzz"}} { // the last: 62^10 - 1
		seq := c.seq
		id := taskID(a, seq)
		if id != a+c.digits || !taskwire.ValidToken(id) || seen[id] {
			t.Fatalf("id %q of task %d: want a new token %q", id, seq, a+c.digits)
		}
		seen[id] = true
		if got, ok := taskSeq(a, id); !ok || got != seq {
			t.Fatalf("taskSeq(%q) = %d, %v; want %d", id, got, ok, seq)
		}
		if _, ok := taskSeq(b, id); ok {
			t.Fatalf("another producer's prefix read id %q", id)
		}
	}
	for _, id := range []string{"", "short", a, a + "00", a + "01", a + strings.Repeat("1", 11), a + "0.", a + "1.0", a + "x~", b + "1"} {
		if seq, ok := taskSeq(a, id); ok {
			t.Fatalf("taskSeq(%q) = %d: want none", id, seq)
		}
	}
}

// FuzzTaskSeq: result subjects name any token; an id read as a task
// number is exactly the id of that number.
func FuzzTaskSeq(f *testing.F) {
	prefix := "abcdefABCDEF"
	f.Add(taskID(prefix, 12345))
	f.Add(prefix + "zzzzzzzzzz")
	f.Add(prefix + "~~~~~~~~~~")
	f.Fuzz(func(t *testing.T, id string) {
		if seq, ok := taskSeq(prefix, id); ok && taskID(prefix, seq) != id {
			t.Fatalf("taskSeq(%q) = %d, whose id is %q", id, seq, taskID(prefix, seq))
		}
	})
}
