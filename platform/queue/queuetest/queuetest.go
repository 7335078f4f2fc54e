package queuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Features describes what a backend guarantees beyond the port's contract,
// so that the suite checks exactly that. The zero value describes a backend
// with no extras and precise timing.
type Features struct {
	// FIFO says the ready tasks of one queue are delivered in enqueue order
	// (first deliveries, to a single consumer).
	FIFO bool

	// DedupWindow is how long the backend keeps refusing a key after the
	// task that carried it was acked. Zero means keys are only remembered
	// while their task is live; the suite then checks de-duplication of
	// live tasks only.
	DedupWindow time.Duration

	// MaxDeliveries is the backend's own safety limit, as configured by the
	// factory: a task whose lease expired this many times is dead-lettered
	// without a consumer's verdict. Zero means the backend has none and the
	// case is skipped. Keep it small (2 or 3): the case waits that many
	// lease terms.
	MaxDeliveries int

	// Lease is the lease duration the timing cases use. Zero means 200ms.
	// A backend with a coarser minimum lease sets it higher (the suite gets
	// slower accordingly).
	Lease time.Duration

	// Slack is how late, at most, the backend may act on a time: deliver a
	// retry or a NotBefore task after it is due, redeliver after a lease
	// ended, wake a blocked Lease. Zero means 2s. The suite waits that long
	// before declaring a delivery missing; it never accepts one that is
	// early.
	Slack time.Duration

	// StatsLag is how long Stats may take to reflect a change. Zero means
	// Stats are exact the moment a call returns (the suite checks them at
	// once); otherwise it polls for up to StatsLag.
	StatsLag time.Duration

	// LeaveDead, when set, makes b leave the dead letter of queue q whose
	// task has id for a reason of its own on the next Redrive (redrive
	// true) or Purge (false) of it, as b may do on its own (JetStream: the
	// dead letter claimed by the other action). The suite checks that
	// Redrive and Purge then report each dead letter they left with a
	// queue.DeadLetterError of its own id, and do the others. Nil means
	// the backend never leaves one (memory): the suite checks that they
	// answer no error.
	LeaveDead func(t *testing.T, b queue.Backend, q, id string, redrive bool)

	// Reopen, when set, declares the backend durable: it must return a
	// backend over the same store as old, which the suite has closed. It
	// receives the same *testing.T as the factory call that created old, so
	// a factory can key per-case state (a directory from t.TempDir, a
	// server) by t. The suite then checks that deliveries left unsettled at
	// Close are delivered again after the reopen, and that dead letters and
	// ready tasks survive it.
	Reopen func(t *testing.T, old queue.Backend) queue.Backend
}

func (f Features) withDefaults() Features {
	if f.Lease <= 0 {
		f.Lease = 200 * time.Millisecond
	}
	if f.Slack <= 0 {
		f.Slack = 2 * time.Second
	}
	return f
}

// Run runs every conformance case as a parallel subtest of t. newBackend is
// called once per case (with the case's *testing.T) and returns a fresh
// backend; the suite closes it when the case ends.
func Run(t *testing.T, f Features, newBackend func(t *testing.T) queue.Backend) {
	t.Helper()
	f = f.withDefaults()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.skip != nil {
				if why := c.skip(f); why != "" {
					t.Skip(why)
				}
			}
			c.run(t, newSuite(t, f, newBackend))
		})
	}
}

// QueueName returns a queue name unique to this test and run, made of
// lower-case letters, digits and '-' only (safe as a NATS stream name, a
// subject token or a SQL value). prefix should be short.
func QueueName(tb testing.TB, prefix string) string {
	tb.Helper()
	var b [6]byte
	_, err := rand.Read(b[:])
	require.NoError(tb, err)
	return "qt-" + prefix + "-" + hex.EncodeToString(b[:])
}

// suite is one case's bundle: its backend, its queue and helpers.
type suite struct {
	t   *testing.T
	f   Features
	b   queue.Backend
	q   string
	ctx context.Context
	mk  func(t *testing.T) queue.Backend
}

func newSuite(t *testing.T, f Features, mk func(t *testing.T) queue.Backend) *suite {
	t.Helper()
	b := mk(t)
	require.NotNil(t, b, "factory returned a nil backend")
	s := &suite{t: t, f: f, b: b, ctx: t.Context(), mk: mk}
	s.q = QueueName(t, strings.ToLower(shortName(t.Name())))
	t.Cleanup(func() { s.closeNow() })
	return s
}

// closeNow closes the current backend with a bounded context.
func (s *suite) closeNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.b.Close(ctx)
}

func shortName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var sb strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
		}
		if sb.Len() == 12 {
			break
		}
	}
	return sb.String()
}

// newTask returns a task of the case's queue with a recognisable payload.
func (s *suite) newTask(payload string) *task.Task {
	return &task.Task{Kind: "queuetest.kind", Queue: s.q, Payload: []byte(payload)}
}

func (s *suite) enqueue(tasks ...*task.Task) {
	s.t.Helper()
	require.NoError(s.t, s.b.Enqueue(s.ctx, tasks...))
}

// leaseN leases exactly n deliveries (in one or more calls), failing if
// they do not all arrive within the slack.
func (s *suite) leaseN(n int, leaseFor time.Duration) []*queue.Delivery {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, s.f.Slack)
	defer cancel()
	var out []*queue.Delivery
	for len(out) < n {
		ds, err := s.b.Lease(ctx, s.q, n-len(out), leaseFor)
		require.NoError(s.t, err, "lease %d of %d", len(out)+1, n)
		require.LessOrEqual(s.t, len(ds), n-len(out), "Lease returned more than max")
		out = append(out, ds...)
	}
	return out
}

// leaseOne leases one delivery, waiting at most wait.
func (s *suite) leaseOne(leaseFor, wait time.Duration) *queue.Delivery {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, wait)
	defer cancel()
	ds, err := s.b.Lease(ctx, s.q, 1, leaseFor)
	require.NoError(s.t, err, "expected a delivery within %s", wait)
	require.Len(s.t, ds, 1)
	require.NotNil(s.t, ds[0].Task)
	return ds[0]
}

// expectNone checks that nothing is delivered within wait.
func (s *suite) expectNone(wait time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, wait)
	defer cancel()
	ds, err := s.b.Lease(ctx, s.q, 1, s.f.Lease)
	if len(ds) > 0 {
		s.t.Fatalf("unexpected delivery of task %s (attempt %d)", ds[0].Task.ID, ds[0].Task.Attempt)
	}
	require.ErrorIs(s.t, err, context.DeadlineExceeded)
}

// stats checks the queue's counts, polling for up to StatsLag.
func (s *suite) stats(ready, delayed, inFlight, dead int64) {
	s.t.Helper()
	want := queue.Stats{Queue: s.q, Ready: ready, Delayed: delayed, InFlight: inFlight, Dead: dead}
	deadline := time.Now().Add(s.f.StatsLag)
	for {
		got, err := s.b.Stats(s.ctx, s.q)
		require.NoError(s.t, err)
		if got == want || time.Now().After(deadline) {
			require.Equal(s.t, want, got, "stats")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireLost checks that every settlement of a stale delivery fails with
// queue.ErrLeaseLost.
func (s *suite) requireLost(d *queue.Delivery) {
	s.t.Helper()
	require.ErrorIs(s.t, s.b.Ack(s.ctx, d), queue.ErrLeaseLost, "Ack")
	require.ErrorIs(s.t, s.b.Retry(s.ctx, d, time.Now()), queue.ErrLeaseLost, "Retry")
	require.ErrorIs(s.t, s.b.DeadLetter(s.ctx, d, "stale"), queue.ErrLeaseLost, "DeadLetter")
	require.ErrorIs(s.t, s.b.Extend(s.ctx, d, s.f.Lease), queue.ErrLeaseLost, "Extend")
}

// goAsync runs fn in a goroutine and returns a channel with its error.
func goAsync(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// waitErr waits up to d for an error from ch.
func waitErr(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
		return errors.New("unreachable")
	}
}
