package tasks

// waitList is a producer's pending futures in submission order, linked
// through the futures themselves: pushing and removing cost no allocation
// and no search, and a walk from the oldest stops at the first future too
// young to matter. Its user holds the producer's mu.
type waitList struct {
	oldest, newest *Future
}

// push appends f, the newest.
func (l *waitList) push(f *Future) {
	f.older, f.newer = l.newest, nil
	if l.newest != nil {
		l.newest.newer = f
	} else {
		l.oldest = f
	}
	l.newest = f
}

// remove unlinks f, which is in the list.
func (l *waitList) remove(f *Future) {
	if f.older != nil {
		f.older.newer = f.newer
	} else {
		l.oldest = f.newer
	}
	if f.newer != nil {
		f.newer.older = f.older
	} else {
		l.newest = f.older
	}
	f.older, f.newer = nil, nil
}
