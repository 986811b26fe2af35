package actors

import "fmt"

// CreateOption tweaks CreateActor, CreateActorGroup and GetActor.
type CreateOption func(*createOpts) error

type createOpts struct {
	getIfExists    bool
	namespace      string
	pool           string
	nonPreemptible bool
	maxConcurrency int
	maxRestarts    int
	maxTaskRetries int
	detached       bool
}

// GetIfExists returns the live actor of that name instead of ErrExists.
func GetIfExists() CreateOption {
	return func(o *createOpts) error { o.getIfExists = true; return nil }
}

// Namespace sets the actor's namespace. Defaults to the client's namespace:
// the current job's namespace (from FRAY_JOB_ID), or "default".
func Namespace(ns string) CreateOption {
	return func(o *createOpts) error {
		if err := checkName("namespace", ns); err != nil {
			return err
		}
		o.namespace = ns
		return nil
	}
}

// Pool places the actor on workers of pool p. Defaults to "default".
func Pool(p string) CreateOption {
	return func(o *createOpts) error {
		if p == "" {
			return fmt.Errorf("actors: empty pool")
		}
		o.pool = p
		return nil
	}
}

// NonPreemptible places the actor only on workers with the attribute
// preemptible=false.
func NonPreemptible() CreateOption {
	return func(o *createOpts) error { o.nonPreemptible = true; return nil }
}

// MaxConcurrency is how many calls run at once. Defaults to 1: one at a
// time, in arrival order.
func MaxConcurrency(n int) CreateOption {
	return func(o *createOpts) error {
		if n < 1 {
			return fmt.Errorf("actors: MaxConcurrency %d: want >= 1", n)
		}
		o.maxConcurrency = n
		return nil
	}
}

// MaxRestarts is how many times the supervisor recreates the actor after its
// host dies or it fails. Defaults to 0; -1 means forever.
func MaxRestarts(n int) CreateOption {
	return func(o *createOpts) error {
		if n < -1 {
			return fmt.Errorf("actors: MaxRestarts %d: want >= -1", n)
		}
		o.maxRestarts = n
		return nil
	}
}

// MaxTaskRetries is how many times a call that a dead instance may have
// started is sent again to the next instance. Defaults to 0: such a call
// fails with ErrActorUnavailable.
func MaxTaskRetries(n int) CreateOption {
	return func(o *createOpts) error {
		if n < 0 {
			return fmt.Errorf("actors: MaxTaskRetries %d: want >= 0", n)
		}
		o.maxTaskRetries = n
		return nil
	}
}

// Detached makes the actor outlive the job that created it. Without it the
// actor is stopped when its creator's job (FRAY_JOB_ID) ends.
func Detached() CreateOption {
	return func(o *createOpts) error { o.detached = true; return nil }
}

func buildOpts(defNS string, opts []CreateOption) (createOpts, error) {
	o := createOpts{namespace: defNS, pool: "default", maxConcurrency: 1}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}
