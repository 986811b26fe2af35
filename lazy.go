package fray

import "sync"

// lazy builds a sub-client once, on first use.
type lazy struct {
	once sync.Once
	v    any
	err  error
}

func (l *lazy) get(build func() (any, error)) (any, error) {
	l.once.Do(func() { l.v, l.err = build() })
	return l.v, l.err
}
