package tasks

// pendingTable holds a producer's pending futures by their number (see
// taskid.go): in a ring, a slice indexed by the number modulo its length,
// which results, arriving roughly in submission order, read in order,
// without hashing an id or comparing one. The ring doubles while more than
// half full, up to maxRing; a future still pending when its slot is wanted
// by a newer one otherwise moves to a map. Its user holds the producer's
// mu.
type pendingTable struct {
	ring  []*Future // length a power of two, or none yet
	older map[uint64]*Future
	n     int // futures held, in the ring and the map
}

const (
	minRing = 256
	maxRing = 1 << 16
)

// put adds f, numbered f.seq, which the table does not hold.
func (t *pendingTable) put(f *Future) {
	if len(t.ring) == 0 {
		t.ring = make([]*Future, minRing)
	}
	t.n++
	for {
		i := f.seq & uint64(len(t.ring)-1)
		old := t.ring[i]
		if old == nil {
			t.ring[i] = f
			return
		}
		if 2*t.n > len(t.ring) && len(t.ring) < maxRing {
			t.grow()
			continue
		}
		if t.older == nil {
			t.older = map[uint64]*Future{}
		}
		t.older[old.seq] = old
		t.ring[i] = f
		return
	}
}

// grow doubles the ring: numbers apart by less than its length stay apart.
func (t *pendingTable) grow() {
	ring := make([]*Future, 2*len(t.ring))
	mask := uint64(len(ring) - 1)
	for _, f := range t.ring {
		if f != nil {
			ring[f.seq&mask] = f
		}
	}
	t.ring = ring
}

// get returns the future numbered seq, or nil.
func (t *pendingTable) get(seq uint64) *Future {
	if len(t.ring) > 0 {
		if f := t.ring[seq&uint64(len(t.ring)-1)]; f != nil && f.seq == seq {
			return f
		}
	}
	return t.older[seq]
}

// remove drops f, which the table holds.
func (t *pendingTable) remove(f *Future) {
	t.n--
	if i := f.seq & uint64(len(t.ring)-1); t.ring[i] == f {
		t.ring[i] = nil
		return
	}
	delete(t.older, f.seq)
}

// all lists the futures held.
func (t *pendingTable) all() []*Future {
	fs := make([]*Future, 0, t.n)
	for _, f := range t.ring {
		if f != nil {
			fs = append(fs, f)
		}
	}
	for _, f := range t.older {
		fs = append(fs, f)
	}
	return fs
}
