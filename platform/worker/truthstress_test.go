package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// truthBackend is a memory backend that records what it really did: the
// settlements that went through, per task, and the dead letters it made
// on its own.
type truthBackend struct {
	*memory.Backend
	mu                             sync.Mutex
	acks, retries, deads, releases map[string]int
	refused                        int
	ackRefused, retryRefused       int
	deadRefused, releaseRefused    int
	releaseLost                    []*task.Task // refused: queue.ErrLeaseLost
	watchDeads                     map[string]int
}

func newTruthBackend(opts memory.Options) *truthBackend {
	return &truthBackend{Backend: memory.New(opts), acks: map[string]int{}, retries: map[string]int{},
		deads: map[string]int{}, releases: map[string]int{}, watchDeads: map[string]int{}}
}

func (b *truthBackend) note(m map[string]int, refused *int, id string, err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		m[id]++
	} else {
		*refused++
	}
	return err
}

func (b *truthBackend) Ack(ctx context.Context, d *queue.Delivery) error {
	return b.note(b.acks, &b.ackRefused, d.Task.ID, b.Backend.Ack(ctx, d))
}

func (b *truthBackend) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	return b.note(b.retries, &b.retryRefused, d.Task.ID, b.Backend.Retry(ctx, d, at))
}

func (b *truthBackend) DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	return b.note(b.deads, &b.deadRefused, d.Task.ID, b.Backend.DeadLetter(ctx, d, reason))
}

func (b *truthBackend) Release(ctx context.Context, d *queue.Delivery) error {
	err := b.Backend.Release(ctx, d)
	if errors.Is(err, queue.ErrLeaseLost) {
		b.mu.Lock()
		b.releaseLost = append(b.releaseLost, d.Task)
		b.mu.Unlock()
	}
	return b.note(b.releases, &b.releaseRefused, d.Task.ID, err)
}

func (b *truthBackend) WatchDead(fn func(queue.DeadLetter)) {
	b.Backend.WatchDead(func(dl queue.DeadLetter) {
		b.mu.Lock()
		b.watchDeads[dl.Task.ID]++
		b.mu.Unlock()
		fn(dl)
	})
}

func sum(m map[string]int) int64 {
	n := 0
	for _, v := range m {
		n += v
	}
	return int64(n)
}

// tally counts the observer's outcomes and remembers the deliveries'
// tasks that ran.
type tally struct {
	task.NopObserver
	mu      sync.Mutex
	n       map[task.Outcome]int64
	stopped int64 // returned: cancelled by Stop
	ran     map[*task.Task]bool
}

func (o *tally) Starting(ctx context.Context, t *task.Task) context.Context {
	o.mu.Lock()
	if o.ran == nil {
		o.ran = map[*task.Task]bool{}
	}
	o.ran[t] = true
	o.mu.Unlock()
	return ctx
}

func (o *tally) Finished(_ context.Context, _ *task.Task, out task.Outcome, err error, _ string, _ time.Duration) {
	o.mu.Lock()
	if o.n == nil {
		o.n = map[task.Outcome]int64{}
	}
	o.n[out]++
	if errors.Is(err, task.ErrStopped) {
		o.stopped++
	}
	o.mu.Unlock()
}

// idInbox emits n tasks and records, by task id, what it is told.
type idInbox struct {
	n  int
	mu sync.Mutex
	by map[string][]task.Outcome
}

func (s *idInbox) Name() string { return "stress" }

func (s *idInbox) Run(ctx context.Context, emit source.Emitter) error {
	for i := range s.n {
		if err := emit.Emit(ctx, &task.Task{Kind: "stress", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func (s *idInbox) Complete(_ context.Context, t *task.Task, o task.Outcome, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[string][]task.Outcome{}
	}
	s.by[t.ID] = append(s.by[t.ID], o)
	return nil
}

// TestStressCountsMatchTheBackend runs a pool on the memory backend with
// handlers that succeed, fail, fail for good and overrun their leases
// (the backend delivers them again, MaxDeliveries dead-letters some),
// while the pool is paused, resumed and resized and dead letters are
// re-driven and purged; then it checks that every count (the pool's
// Stats, the observer's outcomes, what the source was told, the queue's
// Stats) is what the backend really did.
func TestStressCountsMatchTheBackend(t *testing.T) {
	t.Parallel()
	stressCounts(t, false)
}

// TestStressStopCountsMatchTheBackend is TestStressCountsMatchTheBackend
// with the runtime stopped in the middle of the load, with a short drain:
// handlers are cancelled and their deliveries given back, some by Stop
// itself (handlers that ignore their cancellation).
func TestStressStopCountsMatchTheBackend(t *testing.T) {
	t.Parallel()
	stressCounts(t, true)
}

func stressCounts(t *testing.T, stopMidway bool) {
	be := newTruthBackend(memory.Options{MaxDeliveries: 2, Capacity: 64})
	const n = 300
	src := &idInbox{n: n}
	obs := &tally{}
	cfg := worker.PoolConfig{
		Concurrency:  4,
		BatchSize:    4,
		Lease:        80 * time.Millisecond,
		TaskTimeout:  40 * time.Millisecond,
		MaxAttempts:  4,
		Backoff:      worker.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Jitter: -1},
		DrainTimeout: time.Second,
	}
	if stopMidway {
		cfg.DrainTimeout = 10 * time.Millisecond
	}
	route := task.Route{Kind: "stress", Queue: "stress", Handler: task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
		switch rand.IntN(10) {
		case 0:
			return task.Permanentf("bad")
		case 1, 2:
			return errors.New("flaky")
		case 3:
			return task.RetryAfter(3*time.Millisecond, errors.New("later"))
		case 4:
			// Ignores its timeout: its lease ends, the task comes back.
			if rand.IntN(2) == 0 {
				time.Sleep(250 * time.Millisecond)
				switch rand.IntN(3) {
				case 0:
					return errors.New("late failure")
				case 1:
					return task.Permanentf("late permanent failure")
				}
				return nil
			}
		}
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		return nil
	})}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"stress": cfg}, Routes: []task.Route{route},
		Sources: []source.Source{src}, Observer: obs})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	p, _ := rt.Pool("stress")

	ctx := context.Background()
	var purged atomic.Int64
	stopChaos := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(rand.IntN(15)) * time.Millisecond):
			}
			switch rand.IntN(5) {
			case 0:
				p.Pause()
				time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
				p.Resume()
			case 1:
				assert.NoError(t, p.Resize(1+rand.IntN(6)))
			case 2:
				_, err := be.Redrive(ctx, "stress")
				assert.NoError(t, err)
			case 3:
				dl, err := be.ListDead(ctx, "stress", 1)
				assert.NoError(t, err)
				if len(dl) > 0 {
					k, err := be.Purge(ctx, "stress", dl[0].Task.ID)
					assert.NoError(t, err)
					purged.Add(int64(k))
				}
			}
		}
	})
	if stopMidway {
		time.Sleep(300 * time.Millisecond)
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := rt.Stop(sctx)
		cancel()
		t.Logf("stop: %v", err)
		close(stopChaos)
		wg.Wait()
		// Handlers that ignored their cancellation end now.
		require.Eventually(t, func() bool { return p.Stats().InFlight == 0 }, 5*time.Second, time.Millisecond)
	} else {
		time.Sleep(1500 * time.Millisecond)
		close(stopChaos)
		wg.Wait()
		p.Resume()
	}

	if !stopMidway {
		// Every task ends: acked, or a dead letter (kept or purged).
		require.Eventually(t, func() bool {
			st, err := be.Stats(ctx, "stress")
			require.NoError(t, err)
			be.mu.Lock()
			done := sum(be.acks)
			be.mu.Unlock()
			return st.Ready+st.Delayed+st.InFlight == 0 && done+st.Dead+purged.Load() == n && p.Stats().InFlight == 0
		}, 30*time.Second, 10*time.Millisecond)
		require.NoError(t, rt.Stop(ctx))
	}
	st, err := be.Stats(ctx, "stress")
	require.NoError(t, err)
	require.NoError(t, be.Close(ctx))

	be.mu.Lock()
	defer be.mu.Unlock()
	ps := p.Stats()
	t.Logf("pool %+v; queue %+v; acks %d retries %d deads %d watch %d releases %d", ps, st,
		sum(be.acks), sum(be.retries), sum(be.deads), sum(be.watchDeads), sum(be.releases))
	require.Equal(t, sum(be.acks), ps.Succeeded, "succeeded")
	require.Equal(t, sum(be.retries), ps.Retried, "retried")
	require.Equal(t, sum(be.deads)+sum(be.watchDeads), ps.Dead, "dead")
	require.Equal(t, sum(be.releases), ps.Returned, "returned")
	require.Equal(t, int64(be.ackRefused), ps.SettleFailed.Ack, "ack failures")
	require.Equal(t, int64(be.retryRefused), ps.SettleFailed.Retry, "retry failures")
	require.Equal(t, int64(be.deadRefused), ps.SettleFailed.DeadLetter, "dead-letter failures")
	// A delivery given back unrun whose lease had ended (the backend
	// refused with ErrLeaseLost) expired: it is no failed release.
	obs.mu.Lock()
	var unrunLost int64
	for _, tk := range be.releaseLost {
		if !obs.ran[tk] {
			unrunLost++
		}
	}
	obs.mu.Unlock()
	require.Equal(t, int64(be.releaseRefused)-unrunLost, ps.SettleFailed.Release, "release failures")
	require.LessOrEqual(t, unrunLost, ps.Expired, "expired, given back unrun")
	for id, k := range be.acks {
		require.Equal(t, 1, k, "task %s acked %d times", id, k)
	}
	obs.mu.Lock()
	require.Equal(t, sum(be.acks), obs.n[task.Succeeded], "observer: succeeded")
	require.Equal(t, sum(be.retries), obs.n[task.Retried], "observer: retried")
	require.Equal(t, sum(be.deads), obs.n[task.DeadLettered], "observer: dead-lettered")
	settleFailed := ps.SettleFailed.Ack + ps.SettleFailed.Retry + ps.SettleFailed.DeadLetter
	if stopMidway {
		// And the handlers that ignored their cancellation and succeeded
		// after Stop gave their deliveries back.
		require.LessOrEqual(t, settleFailed, obs.n[task.Returned]-obs.stopped, "observer: returned")
	} else {
		require.Equal(t, settleFailed, obs.n[task.Returned]-obs.stopped, "observer: returned")
	}
	var finished int64
	for _, k := range obs.n {
		finished += k
	}
	require.Equal(t, ps.Processed, finished, "processed")
	obs.mu.Unlock()
	src.mu.Lock()
	defer src.mu.Unlock()
	for id, outs := range src.by {
		var want []task.Outcome
		for range be.deads[id] + be.watchDeads[id] {
			want = append(want, task.DeadLettered)
		}
		if be.acks[id] > 0 {
			want = append(want, task.Succeeded)
		}
		require.ElementsMatch(t, want, outs, "told of task %s", id)
	}
	told := 0
	for _, outs := range src.by {
		told += len(outs)
	}
	require.Equal(t, sum(be.acks)+sum(be.deads)+sum(be.watchDeads), int64(told), "tellings")
}
