package jobs

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// TPUType is one TPU slice type: how many chips it has, how many hosts (VMs)
// carry them, and its physical topology.
type TPUType struct {
	Variant  string // canonical name, e.g. "v5e-16"
	Chips    int    // chips in one slice
	Hosts    int    // physical hosts in one slice
	VMs      int    // TPU VMs in one slice (one per host); each runs one replica
	Topology string // e.g. "4x4"
}

// ChipsPerVM is the number of chips each VM of the slice holds.
func (t TPUType) ChipsPerVM() int { return t.Chips / t.VMs }

// tpuTypes is the TPU slice table. v4 and v5p names count TensorCores (two
// per chip, four chips per host); v5e and v6e names count chips (up to eight
// chips on one host for the single-host shapes, four per host otherwise).
var tpuTypes = func() map[string]TPUType {
	m := map[string]TPUType{}
	add := func(gen string, n, chips, vms int, topo string) {
		v := fmt.Sprintf("%s-%d", gen, n)
		m[v] = TPUType{Variant: v, Chips: chips, Hosts: vms, VMs: vms, Topology: topo}
	}
	for _, gen := range []string{"v4", "v5p"} {
		for _, r := range []struct {
			cores int
			topo  string
		}{{8, "2x2x1"}, {16, "2x2x2"}, {32, "2x2x4"}, {64, "2x4x4"}, {128, "4x4x4"}, {256, "4x4x8"}, {512, "4x8x8"}, {1024, "8x8x8"}, {2048, "8x8x16"}, {4096, "8x16x16"}} {
			chips := r.cores / 2
			add(gen, r.cores, chips, max(1, chips/4), r.topo)
		}
	}
	add("v5p", 8192, 4096, 1024, "16x16x16")
	add("v5p", 12288, 6144, 1536, "16x16x24")
	for _, gen := range []string{"v5e", "v6e"} {
		add(gen, 1, 1, 1, "1x1")
		add(gen, 4, 4, 1, "2x2")
		add(gen, 8, 8, 1, "2x4")
		for _, r := range []struct {
			chips int
			topo  string
		}{{16, "4x4"}, {32, "4x8"}, {64, "8x8"}, {128, "8x16"}, {256, "16x16"}} {
			add(gen, r.chips, r.chips, r.chips/4, r.topo)
		}
	}
	return m
}()

// LookupTPU returns the slice type of variant. It accepts the canonical names
// ("v5e-16", "v5p-8", "v6e-256", "v4-32") and Google's long v5e form
// ("v5litepod-16"), case-insensitively.
func LookupTPU(variant string) (TPUType, bool) {
	v := strings.ToLower(strings.TrimSpace(variant))
	v = strings.Replace(v, "v5litepod-", "v5e-", 1)
	v = strings.Replace(v, "v6e-lite-", "v6e-", 1)
	t, ok := tpuTypes[v]
	return t, ok
}

// TPUVariants lists every known TPU slice type, sorted.
func TPUVariants() []string {
	out := make([]string, 0, len(tpuTypes))
	for v := range tpuTypes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		gi, ni := splitVariant(out[i])
		gj, nj := splitVariant(out[j])
		if gi != gj {
			return gi < gj
		}
		return ni < nj
	})
	return out
}

func splitVariant(v string) (string, int) {
	i := strings.LastIndexByte(v, '-')
	n, _ := strconv.Atoi(v[i+1:])
	return v[:i], n
}

// WithTPU asks for slices TPU slices of variant (e.g. "v5e-16"): each replica
// runs on one VM of a slice and holds that VM's chips, so Replicas becomes
// slices × VMs per slice. A single multi-VM slice is coscheduled by
// "tpu-name", so all its replicas land on the VMs of one slice.
func (r *JobRequest) WithTPU(variant string, slices int) error {
	t, ok := LookupTPU(variant)
	if !ok {
		return fmt.Errorf("%w: unknown TPU type %q (known: %s)", ErrInvalid, variant, strings.Join(TPUVariants(), ", "))
	}
	if slices < 1 {
		return fmt.Errorf("%w: TPU slices %d: want at least 1", ErrInvalid, slices)
	}
	r.Resources.Device = DeviceConfig{Kind: DeviceTPU, Variant: t.Variant, Topology: t.Topology, Count: t.ChipsPerVM()}
	r.Replicas = slices * t.VMs
	if slices == 1 && t.VMs > 1 && r.Coscheduling == nil {
		r.Coscheduling = &Coscheduling{GroupBy: AttrTPUName}
	}
	return nil
}

// WithGPU asks for n GPUs of variant (e.g. "H100") per replica.
func (r *JobRequest) WithGPU(variant string, n int) error {
	if n < 1 {
		return fmt.Errorf("%w: GPU count %d: want at least 1", ErrInvalid, n)
	}
	if strings.TrimSpace(variant) == "" {
		return fmt.Errorf("%w: GPU variant is empty", ErrInvalid)
	}
	r.Resources.Device = DeviceConfig{Kind: DeviceGPU, Variant: variant, Count: n}
	return nil
}

// ParseBytes parses a size such as "4g", "512M", "1.5GiB", "100k" or "1024"
// (bytes). Units are binary (k = 1024) and case-insensitive; an optional
// trailing "b", "ib" is accepted. The empty string is 0.
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, nil
	}
	t = strings.TrimSuffix(t, "b")
	t = strings.TrimSuffix(t, "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		case 'p':
			mult = 1 << 50
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: size %q: want a number with an optional unit k, m, g, t (e.g. \"4g\")", ErrInvalid, s)
	}
	v := f * float64(mult)
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	return int64(math.Round(v)), nil
}
