package dispatcher

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// Need is the capacity one replica claims on a worker.
type Need struct {
	CPU     float64
	RAM     int64
	Disk    int64
	Devices int
}

func (n Need) add(m Need) Need {
	return Need{n.CPU + m.CPU, n.RAM + m.RAM, n.Disk + m.Disk, n.Devices + m.Devices}
}

func (n Need) String() string {
	s := fmt.Sprintf("cpu=%g", n.CPU)
	if n.RAM > 0 {
		s += " ram=" + jobwire.FormatBytes(n.RAM)
	}
	if n.Disk > 0 {
		s += " disk=" + jobwire.FormatBytes(n.Disk)
	}
	if n.Devices > 0 {
		s += fmt.Sprintf(" devices=%d", n.Devices)
	}
	return s
}

// DefaultCPU is the cores a replica claims when its request says 0.
const DefaultCPU = 1.0

// NeedOf is what each replica of req claims.
func NeedOf(req *jobs.JobRequest) Need {
	ram, _ := jobs.ParseBytes(req.Resources.RAM)
	disk, _ := jobs.ParseBytes(req.Resources.Disk)
	cpu := req.Resources.CPU
	if cpu == 0 {
		cpu = DefaultCPU
	}
	n := Need{CPU: cpu, RAM: ram, Disk: disk}
	d := req.Resources.Device
	switch strings.ToLower(d.Kind) {
	case jobs.DeviceGPU:
		n.Devices = d.Count
	case jobs.DeviceTPU:
		n.Devices = d.Count
		if n.Devices == 0 {
			if t, ok := jobs.LookupTPU(d.Variant); ok {
				n.Devices = t.ChipsPerVM()
			}
		}
	}
	return n
}

// WorkerState is a live worker as placement sees it: its record and the
// capacity already claimed on it.
type WorkerState struct {
	Info broker.WorkerInfo
	Used Need
}

// Total is the worker's whole capacity.
func (w *WorkerState) Total() Need {
	r := w.Info.Resources
	return Need{CPU: r.CPU, RAM: r.RAMBytes, Disk: r.DiskBytes, Devices: r.DeviceCount}
}

// fits reports whether need fits into have, where a zero RAM or disk
// capacity means "not accounted".
func fits(need, have Need) bool {
	const eps = 1e-9
	return need.CPU <= have.CPU+eps &&
		(need.RAM == 0 || have.RAM <= 0 || need.RAM <= have.RAM) &&
		(need.Disk == 0 || have.Disk <= 0 || need.Disk <= have.Disk) &&
		need.Devices <= have.Devices
}

func (w *WorkerState) free() Need {
	t := w.Total()
	f := Need{CPU: t.CPU - w.Used.CPU, Devices: t.Devices - w.Used.Devices}
	if t.RAM > 0 {
		f.RAM = max(t.RAM-w.Used.RAM, 1) // 1, not 0: 0 means "not accounted"
	}
	if t.Disk > 0 {
		f.Disk = max(t.Disk-w.Used.Disk, 1)
	}
	return f
}

// Placement is the outcome of Place.
type Placement struct {
	// Workers holds the worker id of each replica when the job fits now.
	Workers []string
	// Reason says why it does not fit, when Workers is nil.
	Reason string
	// Never is true when no live worker could ever run it (wrong device,
	// region, attributes or too small), as opposed to busy.
	Never bool
}

// Match reports whether a worker's attributes and total capacity can ever
// run a replica of req, and why not.
func Match(req *jobs.JobRequest, info *broker.WorkerInfo) (bool, string) {
	attr := func(k string) (string, bool) { v, ok := info.Attributes[k]; return v, ok }
	res := &req.Resources
	d := res.Device
	wr := info.Resources
	variants := func() []string { return append([]string{d.Variant}, res.DeviceAlternatives...) }
	variantOK := func(have string) bool {
		if d.Variant == "" {
			return true
		}
		if v, ok := attr(jobs.AttrDeviceVariant); ok && have == "" {
			have = v
		}
		for _, v := range variants() {
			if d.Kind == jobs.DeviceTPU {
				if t, ok := jobs.LookupTPU(v); ok {
					v = t.Variant
				}
				if t, ok := jobs.LookupTPU(have); ok {
					have = t.Variant
				}
			}
			if strings.EqualFold(v, have) {
				return true
			}
		}
		return false
	}
	switch strings.ToLower(d.Kind) {
	case jobs.DeviceGPU, jobs.DeviceTPU:
		kind := strings.ToLower(d.Kind)
		if wr.DeviceKind != kind {
			return false, fmt.Sprintf("has no %s (%s)", kind, devicesOf(wr))
		}
		if !variantOK(wr.DeviceVariant) {
			return false, fmt.Sprintf("has %s %s, not %s", kind, wr.DeviceVariant, strings.Join(variants(), "|"))
		}
		if kind == jobs.DeviceTPU && d.Topology != "" {
			if topo, ok := attr(jobs.AttrTPUTopology); ok && topo != d.Topology {
				return false, fmt.Sprintf("has TPU topology %s, not %s", topo, d.Topology)
			}
		}
	}
	if len(res.Regions) > 0 && !(len(res.Regions) == 1 && res.Regions[0] == "*") {
		r, _ := attr(jobs.AttrRegion)
		if !slices.Contains(res.Regions, r) {
			return false, fmt.Sprintf("is in region %q, not %s", r, strings.Join(res.Regions, "|"))
		}
	}
	if res.Zone != "" {
		if z, _ := attr(jobs.AttrZone); z != res.Zone {
			return false, fmt.Sprintf("is in zone %q, not %s", z, res.Zone)
		}
	}
	if !res.PreemptibleOK() {
		if p, _ := attr(jobs.AttrPreemptible); p != "false" {
			return false, "is preemptible (job wants preemptible=false)"
		}
	}
	for _, c := range req.Constraints {
		v, ok := attr(c.Key)
		switch c.Op {
		case jobs.OpEQ:
			if !ok || v != c.Values[0] {
				return false, fmt.Sprintf("has %s=%q, not %q", c.Key, v, c.Values[0])
			}
		case jobs.OpNE:
			if ok && v == c.Values[0] {
				return false, fmt.Sprintf("has %s=%q", c.Key, v)
			}
		case jobs.OpIN:
			if !ok || !slices.Contains(c.Values, v) {
				return false, fmt.Sprintf("has %s=%q, not one of %s", c.Key, v, strings.Join(c.Values, "|"))
			}
		case jobs.OpEXISTS:
			if !ok {
				return false, fmt.Sprintf("has no attribute %s", c.Key)
			}
		}
	}
	if cs := req.Coscheduling; cs != nil {
		if _, ok := attr(cs.GroupBy); !ok {
			return false, fmt.Sprintf("has no attribute %s (coscheduling group)", cs.GroupBy)
		}
	}
	need := NeedOf(req)
	total := Need{CPU: wr.CPU, RAM: wr.RAMBytes, Disk: wr.DiskBytes, Devices: wr.DeviceCount}
	if !fits(need, total) {
		return false, fmt.Sprintf("is too small (has %s, a replica needs %s)", total, need)
	}
	return true, ""
}

// devicesOf describes a worker's accelerators: "no accelerators" or
// "8× gpu A100".
func devicesOf(wr broker.WorkerResources) string {
	if wr.DeviceKind == "" || wr.DeviceKind == jobs.DeviceCPU || wr.DeviceCount <= 0 {
		return "no accelerators"
	}
	return strings.TrimSpace(fmt.Sprintf("%d× %s %s", wr.DeviceCount, wr.DeviceKind, wr.DeviceVariant))
}

// wants describes what one replica of req asks for, in the words of
// fray submit: "gpu H100:1, cpu=1 ram=4g", "tpu v5e-16 (4 chips), cpu=1".
func wants(req *jobs.JobRequest) string {
	need := NeedOf(req)
	d := req.Resources.Device
	variants := strings.Join(slices.DeleteFunc(append([]string{d.Variant}, req.Resources.DeviceAlternatives...),
		func(v string) bool { return v == "" }), "|")
	var dev string
	switch kind := strings.ToLower(d.Kind); {
	case kind == jobs.DeviceGPU && variants != "":
		dev = fmt.Sprintf("gpu %s:%d, ", variants, need.Devices)
	case kind == jobs.DeviceTPU && variants != "":
		dev = fmt.Sprintf("tpu %s (%d chips), ", variants, need.Devices)
	case kind == jobs.DeviceGPU || kind == jobs.DeviceTPU:
		dev = fmt.Sprintf("%d %s, ", need.Devices, kind)
	}
	need.Devices = 0 // said above
	return dev + need.String()
}

// Place decides where each replica of req goes, all or none (gang). It is
// a pure function of the request and the workers' states. With
// Coscheduling, every replica goes to a distinct worker and all share the
// GroupBy attribute's value; otherwise replicas go first to the workers
// with the most free CPU, several per worker when they fit.
func Place(req *jobs.JobRequest, workers []WorkerState) Placement {
	n := req.NumReplicas()
	need := NeedOf(req)
	if len(workers) == 0 {
		return Placement{Reason: "no live workers"}
	}
	var cands []*WorkerState
	whys := map[string]int{}
	for i := range workers {
		w := &workers[i]
		if ok, why := Match(req, &w.Info); ok {
			cands = append(cands, w)
		} else {
			whys[why]++
		}
	}
	if len(cands) == 0 {
		return Placement{Never: true, Reason: fmt.Sprintf("no live worker can run it (each replica needs %s): %s", wants(req), summarize(whys, len(workers)))}
	}
	usable := func(w *WorkerState) bool { return !w.Info.Draining }
	if cs := req.Coscheduling; cs != nil {
		groups := map[string][]*WorkerState{}
		for _, w := range cands {
			v := w.Info.Attributes[cs.GroupBy]
			groups[v] = append(groups[v], w)
		}
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		// Best fit: the smallest group that holds the gang, then by name.
		sort.Slice(names, func(i, j int) bool {
			a, b := len(groups[names[i]]), len(groups[names[j]])
			if a != b {
				return a < b
			}
			return names[i] < names[j]
		})
		bestFree, bestName, bestSize := -1, "", 0
		largest, largestName := 0, ""
		for _, g := range names {
			ws := groups[g]
			sort.Slice(ws, func(i, j int) bool { return ws[i].Info.ID < ws[j].Info.ID })
			var pick []string
			for _, w := range ws {
				if usable(w) && fits(need, w.free()) {
					pick = append(pick, w.Info.ID)
				}
			}
			if len(pick) >= n {
				return Placement{Workers: pick[:n]}
			}
			if len(ws) > largest || len(ws) == largest && g < largestName {
				largest, largestName = len(ws), g
			}
			if len(pick) > bestFree || len(pick) == bestFree && len(ws) > bestSize {
				bestFree, bestName, bestSize = len(pick), g, len(ws)
			}
		}
		if largest < n {
			// Not Never: a slice's workers may still be registering.
			return Placement{Reason: fmt.Sprintf("waiting for %d workers sharing one %s value; the largest group, %s=%s, has %s",
				n, cs.GroupBy, cs.GroupBy, largestName, workersText(largest))}
		}
		return Placement{Reason: fmt.Sprintf("waiting for %d workers with the same %s and %s free each; best group %s=%s has %d of %d free",
			n, cs.GroupBy, need, cs.GroupBy, bestName, bestFree, bestSize)}
	}
	var slotsFree []*slot
	for _, w := range cands {
		if usable(w) {
			slotsFree = append(slotsFree, &slot{w, w.free()})
		}
	}
	out := packReplicas(need, n, slotsFree)
	if len(out) == n {
		return Placement{Workers: out}
	}
	// Would the gang fit if every matching worker were idle? If not, it
	// never will on these workers: waiting for capacity would be forever.
	idle := make([]*slot, len(cands))
	for i, w := range cands {
		idle[i] = &slot{w, (&WorkerState{Info: w.Info}).free()}
	}
	if most := len(packReplicas(need, n, idle)); most < n {
		return Placement{Never: true, Reason: fmt.Sprintf("the %d matching workers hold at most %d of %d replicas (%s each) even when idle", len(cands), most, n, need)}
	}
	return Placement{Reason: fmt.Sprintf("waiting for capacity: %d of %d replicas (%s each) fit on the %d matching workers now", len(out), n, need, len(cands))}
}

// workersText is "1 worker" or "n workers".
func workersText(n int) string {
	if n == 1 {
		return "1 worker"
	}
	return fmt.Sprintf("%d workers", n)
}

// slot is a worker's capacity left while packing replicas onto it.
type slot struct {
	w    *WorkerState
	free Need
}

// packReplicas puts up to n replicas needing need each onto slots, first on
// those with the most free CPU, and returns the worker of each one placed.
// It consumes the slots' free capacity.
func packReplicas(need Need, n int, slots []*slot) []string {
	out := make([]string, 0, n)
	for range n {
		sort.SliceStable(slots, func(i, j int) bool {
			a, b := slots[i], slots[j]
			if a.free.CPU != b.free.CPU {
				return a.free.CPU > b.free.CPU
			}
			return a.w.Info.ID < b.w.Info.ID
		})
		placed := false
		for _, s := range slots {
			if fits(need, s.free) {
				out = append(out, s.w.Info.ID)
				s.free = Need{CPU: s.free.CPU - need.CPU, RAM: sub1(s.free.RAM, need.RAM), Disk: sub1(s.free.Disk, need.Disk), Devices: s.free.Devices - need.Devices}
				placed = true
				break
			}
		}
		if !placed {
			break
		}
	}
	return out
}

func sub1(have, need int64) int64 {
	if have <= 0 {
		return have
	}
	return max(have-need, 1)
}

func summarize(whys map[string]int, total int) string {
	keys := make([]string, 0, len(whys))
	for k := range whys {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if whys[keys[i]] != whys[keys[j]] {
			return whys[keys[i]] > whys[keys[j]]
		}
		return keys[i] < keys[j]
	})
	rest, restWorkers := 0, 0
	if len(keys) > 3 {
		for _, k := range keys[3:] {
			rest++
			restWorkers += whys[k]
		}
		keys = keys[:3]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d of %d workers: %s", whys[k], total, k)
	}
	if rest > 0 {
		other := "another reason"
		if rest > 1 {
			other = fmt.Sprintf("%d other reasons", rest)
		}
		parts = append(parts, fmt.Sprintf("%d of %d workers: %s (see fray workers)", restWorkers, total, other))
	}
	return strings.Join(parts, "; ")
}
