package tasks

import (
	"fmt"
	"time"

	"github.com/frayhq/fray/internal/taskwire"
)

// DefaultPool is the pool tasks go to unless Pool says otherwise.
const DefaultPool = taskwire.DefaultPool

// DefaultMaxDeliveries is how many deliveries without a result (crashed
// workers) a task tolerates unless MaxDeliveries says otherwise.
const DefaultMaxDeliveries = taskwire.DefaultMaxDeliveries

type submitOptions struct {
	pool          string
	timeout       time.Duration
	retries       int
	backoff       time.Duration
	maxDeliveries int
}

// Option tweaks one submission. An invalid option makes the submission fail
// with an error naming it.
type Option func(*submitOptions) error

// Pool sends the task to a pool of workers. Defaults to "default".
func Pool(name string) Option {
	return func(o *submitOptions) error {
		if err := taskwire.CheckPool(name); err != nil {
			return err
		}
		o.pool = name
		return nil
	}
}

// Timeout bounds each attempt; the handler's context is cancelled when it
// passes and the attempt fails with ErrTimeout. A handler that ignores its
// context is abandoned a second later (the attempt fails then; the handler
// keeps its worker slot until it returns), and a value it returns after
// the timeout is dropped. Defaults to no timeout.
func Timeout(d time.Duration) Option {
	return func(o *submitOptions) error {
		if d <= 0 {
			return fmt.Errorf("tasks: Timeout(%s): want > 0", d)
		}
		o.timeout = d
		return nil
	}
}

// Retries allows n more attempts after a handler error marked Retryable (or
// a timeout), the first after backoff, each later one after twice the
// previous delay (capped at 5 minutes). Defaults to 0 retries.
func Retries(n int, backoff time.Duration) Option {
	return func(o *submitOptions) error {
		if n < 0 || backoff < 0 {
			return fmt.Errorf("tasks: Retries(%d, %s): want n >= 0 and backoff >= 0", n, backoff)
		}
		o.retries, o.backoff = n, backoff
		return nil
	}
}

// MaxDeliveries bounds how many times the task may be delivered without a
// result being recorded (its worker crashed or lost its lease), on top of
// its retries. Defaults to 5.
func MaxDeliveries(n int) Option {
	return func(o *submitOptions) error {
		if n < 1 {
			return fmt.Errorf("tasks: MaxDeliveries(%d): want >= 1", n)
		}
		o.maxDeliveries = n
		return nil
	}
}

func buildOptions(opts []Option) (submitOptions, error) {
	if len(opts) == 0 {
		// Declared apart from o, which the options' pointer moves to the
		// heap: a submission without options allocates nothing here.
		return submitOptions{pool: DefaultPool, maxDeliveries: DefaultMaxDeliveries}, nil
	}
	o := submitOptions{pool: DefaultPool, maxDeliveries: DefaultMaxDeliveries}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}
