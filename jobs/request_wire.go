package jobs

import (
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
)

// How a JobRequest's timeouts travel. Version 1 wrote Timeout and
// SchedulingTimeout as nanoseconds under "timeout" and
// "scheduling_timeout"; version 2 writes whole milliseconds under
// "timeout_ms" and "scheduling_timeout_ms", the unit of every other fray
// duration. Readers take either.

// requestFields is JobRequest without its methods, for the codec.
type requestFields JobRequest

// requestWire is a JobRequest as encoded.
type requestWire struct {
	requestFields
	TimeoutMS           int64 `cbor:"timeout_ms,omitempty"`
	SchedulingTimeoutMS int64 `cbor:"scheduling_timeout_ms,omitempty"`
}

// MarshalCBOR encodes r as version 2: timeouts in milliseconds (a partial
// millisecond rounds up, so a timeout never becomes none).
func (r JobRequest) MarshalCBOR() ([]byte, error) {
	w := requestWire{requestFields: requestFields(r), TimeoutMS: ceilMS(r.Timeout), SchedulingTimeoutMS: ceilMS(r.SchedulingTimeout)}
	w.V = jobwire.RequestVersion
	w.Timeout, w.SchedulingTimeout = 0, 0
	return objects.Marshal(&w)
}

// UnmarshalCBOR decodes a request of version 1 (nanosecond timeouts) or 2
// (millisecond ones).
func (r *JobRequest) UnmarshalCBOR(b []byte) error {
	var w requestWire
	if err := objects.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = JobRequest(w.requestFields)
	if w.TimeoutMS != 0 {
		r.Timeout = time.Duration(w.TimeoutMS) * time.Millisecond
	}
	if w.SchedulingTimeoutMS != 0 {
		r.SchedulingTimeout = time.Duration(w.SchedulingTimeoutMS) * time.Millisecond
	}
	return nil
}

func ceilMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
