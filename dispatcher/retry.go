package dispatcher

import "time"

// Retry is the backoff external backends use for connection errors and
// 5xx answers: attempt n (from 1) waits Initial·2^(n-1), at most Max,
// before attempt n+1.
type Retry struct {
	// Attempts is the total number of tries. Defaults to 5; 1 disables retry.
	Attempts int
	// Initial is the first wait. Defaults to 200 ms.
	Initial time.Duration
	// Max caps each wait. Defaults to 5 s.
	Max time.Duration
}

// DefaultRetry is the policy used when a backend's Retry is zero.
var DefaultRetry = Retry{Attempts: 5, Initial: 200 * time.Millisecond, Max: 5 * time.Second}

// WithDefaults fills zero fields from DefaultRetry.
func (r Retry) WithDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetry.Attempts
	}
	if r.Initial <= 0 {
		r.Initial = DefaultRetry.Initial
	}
	if r.Max <= 0 {
		r.Max = DefaultRetry.Max
	}
	return r
}

// Wait is the delay after the given failed attempt (from 1).
func (r Retry) Wait(attempt int) time.Duration {
	d := r.Initial
	for i := 1; i < attempt && d < r.Max; i++ {
		d *= 2
	}
	return min(d, r.Max)
}
