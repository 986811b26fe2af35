package jobs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Device visibility variables the runner sets in a job process on a worker
// that offers devices. See docs/protocol/jobs.md, "Devices of a task".
const (
	// EnvCUDAVisibleDevices lists the GPUs of a task on a GPU worker. ROCm's
	// HIP runtime reads it too.
	EnvCUDAVisibleDevices = "CUDA_VISIBLE_DEVICES"
	// EnvTPUVisibleChips lists the TPU chips of a task on a TPU worker.
	EnvTPUVisibleChips = "TPU_VISIBLE_CHIPS"
	// EnvTPUChipsPerHostBounds and EnvTPUHostBounds describe a 1- or 2-chip
	// share of a TPU host to libtpu ("1,1,1" or "1,2,1", and "1,1,1"), as
	// Ray does; they are set only for such a share.
	EnvTPUChipsPerHostBounds = "TPU_CHIPS_PER_HOST_BOUNDS"
	EnvTPUHostBounds         = "TPU_HOST_BOUNDS"
)

// DeviceVisibilityVar is the variable that lists a task's devices of kind
// ("gpu" or "tpu"): CUDA_VISIBLE_DEVICES or TPU_VISIBLE_CHIPS; "" for
// other kinds.
func DeviceVisibilityVar(kind string) string {
	switch strings.ToLower(kind) {
	case DeviceGPU:
		return EnvCUDAVisibleDevices
	case DeviceTPU:
		return EnvTPUVisibleChips
	}
	return ""
}

// workerDevices is the list of device ids a runner hands out: explicit if
// given, else the entries of the worker's own visibility variable if it is
// set, else "0".."count-1". Only the first count entries are used.
func workerDevices(kind string, count int, explicit []string) ([]string, error) {
	ids := explicit
	from := "RunnerOptions.Devices"
	if ids == nil {
		name := DeviceVisibilityVar(kind)
		if v, ok := os.LookupEnv(name); ok {
			ids = splitDeviceList(v)
			from = "the worker's " + name + "=" + strconv.Quote(v)
		} else {
			for i := range count {
				ids = append(ids, strconv.Itoa(i))
			}
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, ", \t\n") {
			return nil, fmt.Errorf("%w: runner %s device id %q from %s", ErrInvalid, kind, id, from)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: runner %s device %s listed twice in %s", ErrInvalid, kind, id, from)
		}
		seen[id] = true
	}
	if len(ids) < count {
		return nil, fmt.Errorf("%w: runner offers %d %s device(s) but %s lists only %d", ErrInvalid, count, kind, from, len(ids))
	}
	return append([]string(nil), ids[:count]...), nil
}

// splitDeviceList parses "2, 3" into ["2", "3"]; "" is the empty list.
func splitDeviceList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// deviceEnv is what the runner adds to the environment of a task given devs
// out of a worker whose devices are total.
func deviceEnv(kind string, devs []string, total int) map[string]string {
	name := DeviceVisibilityVar(kind)
	if name == "" {
		return nil
	}
	m := map[string]string{name: strings.Join(devs, ",")}
	if kind == DeviceTPU && len(devs) < total {
		switch len(devs) {
		case 1:
			m[EnvTPUChipsPerHostBounds], m[EnvTPUHostBounds] = "1,1,1", "1,1,1"
		case 2:
			m[EnvTPUChipsPerHostBounds], m[EnvTPUHostBounds] = "1,2,1", "1,1,1"
		}
	}
	return m
}

// devicePool hands out the worker's devices to task attempts: the lowest
// free ones, each to one attempt at a time.
type devicePool struct {
	kind string
	ids  []string

	mu     sync.Mutex
	holder []string      // per device: who holds it, "" when free
	freed  chan struct{} // closed (and replaced) when a device is released
}

func newDevicePool(kind string, ids []string) *devicePool {
	return &devicePool{kind: kind, ids: ids, holder: make([]string, len(ids)), freed: make(chan struct{})}
}

// take gives who the n lowest free devices, or, when fewer are free, says
// which are busy and returns a channel closed at the next release.
func (d *devicePool) take(n int, who string) (ids []string, busy string, freed <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var free []int
	for i, h := range d.holder {
		if h == "" {
			free = append(free, i)
		}
	}
	if len(free) >= n {
		for _, i := range free[:n] {
			d.holder[i] = who
			ids = append(ids, d.ids[i])
		}
		return ids, "", nil
	}
	var held []string
	for i, h := range d.holder {
		if h != "" {
			held = append(held, fmt.Sprintf("%s %s held by %s", d.kind, d.ids[i], h))
		}
	}
	return nil, fmt.Sprintf("%d of %d free; %s", len(free), len(d.ids), strings.Join(held, ", ")), d.freed
}

// release frees ids.
func (d *devicePool) release(ids []string) {
	if len(ids) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		for i := range d.ids {
			if d.ids[i] == id {
				d.holder[i] = ""
			}
		}
	}
	close(d.freed)
	d.freed = make(chan struct{})
}
