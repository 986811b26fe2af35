package metrics

import "sync"

// maxLabelValues bounds the distinct values of one label (function names,
// pools, classes); past it, new values are counted as "other".
const maxLabelValues = 200

// otherLabel stands for a value past the bound, or an empty one.
const otherLabel = "other"

// bounded maps label values onto at most maxLabelValues distinct ones.
type bounded struct {
	mu   sync.RWMutex
	seen map[string]struct{}
}

func (b *bounded) value(s string) string {
	if s == "" {
		return otherLabel
	}
	b.mu.RLock()
	_, ok := b.seen[s]
	n := len(b.seen)
	b.mu.RUnlock()
	if ok {
		return s
	}
	if n >= maxLabelValues {
		return otherLabel
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string]struct{}{}
	}
	if len(b.seen) >= maxLabelValues {
		return otherLabel
	}
	b.seen[s] = struct{}{}
	return s
}
