package bench

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// barePath says how the bare JetStream path is set up. The zero value is
// the bare path at its fastest: nats.go's Consume with its default 500
// messages prefetched, ack, and a core reply to the producer.
type barePath struct {
	// freeSlots asks only for free slots, with fray's top-up rule
	// (tasks/pull.go), instead of prefetching.
	freeSlots bool
	// storeResults does fray's work: each task carries a Nats-Msg-Id (the
	// stream deduplicates a resent task) and is published as fray's
	// producer publishes (leanPublisher), and each result is stored in a
	// stream keeping one message per subject that republishes it to the
	// producer, with the task acked once the result's PubAck arrives.
	storeResults bool
}

// Streams and subjects of the bare path, deleted after each run.
const (
	bareTasks, bareTaskSubject = "BENCH_BASELINE", "bench.base"
	bareResults                = "BENCH_RESULTS"
	bareResultPrefix           = "bench.res."
	bareStoredPrefix           = "bench.stored."
)

// bare measures the bare JetStream path: async publish to a WorkQueue
// stream on file storage, a pull consumer feeding `slots` handler
// goroutines, ack, and the result back to the producer. It returns
// its rate (every result received) and CPU per message.
func bare(ctx context.Context, at site, n, slots int, arg []byte, path barePath) (rate, error) {
	purl, wurl, js := at.purl, at.wurl, at.js
	// The streams have as many replicas as fray's (one, or three on a cluster).
	ts, err := js.Stream(ctx, broker.StreamTasks)
	if err != nil {
		return rate{}, err
	}
	replicas := ts.CachedInfo().Config.Replicas
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bareTasks, Subjects: []string{bareTaskSubject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return rate{}, err
	}
	defer js.DeleteStream(context.Background(), bareTasks)
	if path.storeResults {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bareResults, Subjects: []string{bareResultPrefix + ">"},
			Storage: jetstream.FileStorage, Replicas: replicas, MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
			RePublish: &jetstream.RePublish{Source: bareResultPrefix + ">", Destination: bareStoredPrefix + ">"}}); err != nil {
			return rate{}, err
		}
		defer js.DeleteStream(context.Background(), bareResults)
	}
	if _, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "base", AckPolicy: jetstream.AckExplicitPolicy, MaxWaiting: 4096}); err != nil {
		return rate{}, err
	}
	wnc, err := nats.Connect(wurl)
	if err != nil {
		return rate{}, err
	}
	defer wnc.Close()

	work := make(chan bareJob, slots)
	stop := make(chan struct{}) // ends the handlers; a late delivery is dropped
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	hand := func(j bareJob) {
		select {
		case work <- j:
		case <-stop:
		}
	}
	release, err := barePull(ctx, wnc, slots, path.freeSlots, hand)
	if err != nil {
		return rate{}, err
	}
	finish, err := bareFinish(wnc, path.storeResults)
	if err != nil {
		return rate{}, err
	}
	for range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case j := <-work:
					finish(j.ack, j.reply)
					release()
				}
			}
		}()
	}
	return bareProduce(ctx, purl, at.meter, n, arg, path.storeResults)
}

// site is where the benchmark runs: the producer's and the worker's
// broker URLs (the same one but on a cluster), a JetStream context to
// set up streams with, and the brokers' meter.
type site struct {
	purl, wurl string
	js         jetstream.JetStream
	meter      brokerMeter
}

// rate is a phase's throughput, and the process CPU (user and system,
// broker included) and heap allocations it used per message: allocations
// are steady where CPU and rates move with the machine's load.
// brokerMsgs and brokerBytes are the messages and bytes the brokers moved
// per message (brokerMeter), in and out: the broker's share of the work.
type rate struct{ perS, cpuUS, allocs, allocBytes, brokerMsgs, brokerBytes float64 }

// measure times a phase of n messages from start, taken with phaseStart.
func (st phaseStart) measure(n int) rate {
	wall, cpu := time.Since(st.wall), processCPU()-st.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	msgs, bytes := st.meter.read()
	per := func(v uint64) float64 { return float64(v) / float64(n) }
	return rate{perS: float64(n) / wall.Seconds(), cpuUS: float64(cpu.Microseconds()) / float64(n),
		allocs: per(ms.Mallocs - st.mallocs), allocBytes: per(ms.TotalAlloc - st.allocBytes),
		brokerMsgs: per(msgs - st.brokerMsgs), brokerBytes: per(bytes - st.brokerBytes)}
}

type phaseStart struct {
	wall                    time.Time
	cpu                     time.Duration
	mallocs, allocBytes     uint64
	meter                   brokerMeter
	brokerMsgs, brokerBytes uint64
}

// startPhase starts measuring a phase; meter reads the brokers' counts.
func startPhase(meter brokerMeter) phaseStart {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	msgs, bytes := meter.read()
	return phaseStart{time.Now(), processCPU(), ms.Mallocs, ms.TotalAlloc, meter, msgs, bytes}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bareJob is a delivered task: where to ack it, and where its result goes.
type bareJob struct{ ack, reply string }

// barePull starts delivering task messages to hand (its ack subject and
// its Reply header) and returns the function a handler calls when its
// slot frees. It stops with wnc.
func barePull(ctx context.Context, wnc *nats.Conn, slots int, freeSlots bool, hand func(bareJob)) (release func(), err error) {
	if !freeSlots {
		wjs, _ := jetstream.New(wnc)
		wcons, err := wjs.Consumer(ctx, bareTasks, "base")
		if err != nil {
			return nil, err
		}
		if _, err := wcons.Consume(func(m jetstream.Msg) {
			hand(bareJob{m.Reply(), m.Headers().Get("Reply")})
		}, jetstream.PullMaxMessages(500)); err != nil {
			return nil, err
		}
		return func() {}, nil
	}
	// fray's top-up rule (tasks/pull.go): ask for every free slot in one
	// request once half the slots are free, or at once when no request is
	// open; never more than the free slots. Requests are counted as fray
	// counts them: a request that ends with a count (408, 409 with
	// Nats-Pending-Messages) gives back what it left unfilled; one that ends
	// without (503 No Responders while a replicated consumer's leader is
	// still being elected or its interest has not reached this server, 409
	// Leadership Change) starts a new epoch, asked again shortly.
	var mu sync.Mutex
	var seq, epoch, pending, running int
	inbox := wnc.NewRespInbox()
	topUp := func() { // mu held
		free := slots - running - pending
		if free <= 0 || (pending > 0 && free < max(1, slots/2)) {
			return
		}
		seq++
		pending += free
		wnc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+bareTasks+".base", inbox+"."+strconv.Itoa(seq),
			fmt.Appendf(nil, `{"batch":%d,"expires":%d}`, free, time.Minute.Nanoseconds()))
	}
	sub, err := wnc.Subscribe(inbox+".*", func(m *nats.Msg) {
		status := m.Header.Get("Status")
		mu.Lock()
		if status == "" {
			pending = max(0, pending-1)
			running++
			if pending == 0 {
				topUp()
			}
			mu.Unlock()
			hand(bareJob{m.Reply, m.Header.Get("Reply")})
			return
		}
		defer mu.Unlock()
		n, err := strconv.Atoi(m.Subject[min(len(m.Subject), len(inbox)+1):])
		if err != nil || n < epoch || status == "100" {
			return // about a forgotten request
		}
		if unfilled := m.Header.Get("Nats-Pending-Messages"); unfilled != "" {
			u, _ := strconv.Atoi(unfilled)
			pending = max(0, pending-u)
			topUp()
			return
		}
		pending, epoch = 0, seq+1
		time.AfterFunc(50*time.Millisecond, func() {
			mu.Lock()
			topUp()
			mu.Unlock()
		})
	})
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	mu.Lock()
	topUp()
	mu.Unlock()
	return func() {
		mu.Lock()
		running--
		topUp()
		mu.Unlock()
	}, nil
}

// bareFinish returns what a handler does with a task: ack it and reply
// (core), or, storing results, publish the result to the results stream
// and ack the task once its PubAck arrives. A result refused without a
// PubAck (503 No Responders: the replicated results stream's interest has
// not reached this server yet) is sent again shortly, as fray's executor
// stores a result again, and its task stays unacked until then.
func bareFinish(wnc *nats.Conn, storeResults bool) (func(ack, reply string), error) {
	if !storeResults {
		return func(ack, reply string) {
			wnc.Publish(ack, []byte("+ACK"))
			wnc.Publish(reply, nil)
		}, nil
	}
	var mu sync.Mutex
	acks := map[string]bareJob{} // PubAck subject -> the task
	var seq atomic.Uint64
	inbox := wnc.NewRespInbox()
	store := func(r string, j bareJob) { wnc.PublishRequest(bareResultPrefix+j.reply, r, nil) }
	sub, err := wnc.Subscribe(inbox+".*", func(m *nats.Msg) {
		mu.Lock()
		j, ok := acks[m.Subject]
		refused := m.Header.Get("Status") != ""
		if !refused {
			delete(acks, m.Subject)
		}
		mu.Unlock()
		switch {
		case !ok:
		case refused:
			time.AfterFunc(50*time.Millisecond, func() { store(m.Subject, j) })
		default:
			wnc.Publish(j.ack, []byte("+ACK"))
		}
	})
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	return func(ack, reply string) {
		r := inbox + "." + strconv.FormatUint(seq.Add(1), 36)
		j := bareJob{ack, reply}
		mu.Lock()
		acks[r] = j
		mu.Unlock()
		store(r, j)
	}, nil
}

// stallWait lets a publish wait for a free slot among the 4096 awaiting
// their PubAck as long as fray's producer would (nats.go's default, 200 ms,
// fails the run on a loaded machine).
var stallWait = jetstream.WithStallWait(time.Minute)

// bareProduce publishes n tasks asynchronously and waits for every result:
// core replies to an inbox, or, storing results, stored results
// republished under bareStoredPrefix (each task's Reply header is then its
// result's token, and leanPublisher publishes the tasks).
func bareProduce(ctx context.Context, url string, meter brokerMeter, n int, arg []byte, storeResults bool) (rate, error) {
	pnc, err := nats.Connect(url)
	if err != nil {
		return rate{}, err
	}
	defer pnc.Close()
	// A publish refused or unanswered (a replicated stream electing its
	// leader) is sent again, so the run does not wait for a lost task.
	resend := make(chan *nats.Msg, n)
	pjs, _ := jetstream.New(pnc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, _ error) { resend <- m }))
	inbox := nats.NewInbox()
	if storeResults {
		inbox = bareStoredPrefix + ">"
	}
	var got atomic.Int64
	done := make(chan struct{})
	sub, err := pnc.Subscribe(inbox, func(*nats.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return rate{}, err
	}
	sub.SetPendingLimits(-1, -1)
	defer sub.Unsubscribe()
	// On a cluster the results come from other nodes (the worker's, the
	// results stream leader's): wait until each routes them here.
	probe := inbox
	if storeResults {
		probe = bareStoredPrefix + "probe"
	}
	if err := pnc.Flush(); err != nil {
		return rate{}, err
	}
	if err := meter.awaitInterest(ctx, probe); err != nil {
		return rate{}, err
	}
	var lean *leanPublisher
	if storeResults {
		if lean, err = newLeanPublisher(pnc, n); err != nil {
			return rate{}, err
		}
		defer lean.close()
	}
	start := startPhase(meter)
	for i := range n {
		if lean != nil {
			if err := lean.publish(ctx, i, arg); err != nil {
				return rate{}, err
			}
			continue
		}
		m := &nats.Msg{Subject: bareTaskSubject, Data: arg, Header: nats.Header{"Reply": []string{inbox}}}
		if _, err := pjs.PublishMsgAsync(m, stallWait); err != nil {
			return rate{}, err
		}
	}
	// Wait for every result; resend what failed; give up after a minute
	// without progress rather than hang.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-done:
			return start.measure(n), nil
		case <-ctx.Done():
			return rate{}, ctx.Err()
		case m := <-resend:
			m.Reply, m.Sub = "", nil
			if _, err := pjs.PublishMsgAsync(m, stallWait); err != nil {
				return rate{}, err
			}
		case now := <-tick.C:
			if lean != nil {
				if err := lean.retry(now); err != nil {
					return rate{}, err
				}
			}
			if g := got.Load(); g != last {
				last, lastAt = g, now
			} else if now.Sub(lastAt) > time.Minute {
				return rate{}, fmt.Errorf("bench: bare path stalled at %d of %d results", g, n)
			}
		}
	}
}
