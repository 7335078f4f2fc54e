package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// slowDeadJS is a JetStream API whose dead-letter stream takes delay to
// store a copy (a stream electing a leader): the copy is stored then,
// whether its publisher still waits for the answer or gave up.
type slowDeadJS struct {
	jetstream.JetStream
	delay time.Duration
	wg    sync.WaitGroup
}

func (s *slowDeadJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if !strings.Contains(m.Subject, ".dead.") {
		return s.JetStream.PublishMsg(ctx, m, opts...)
	}
	type result struct {
		ack *jetstream.PubAck
		err error
	}
	done := make(chan result, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(s.delay)
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ack, err := s.JetStream.PublishMsg(pctx, m, opts...)
		done <- result{ack, err}
	}()
	select {
	case r := <-done:
		return r.ack, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// openSlowDead starts a backend from cfg whose dead-letter copies take
// delay to be stored, and closes it when t ends.
func openSlowDead(t *testing.T, p Params, delay time.Duration) *Backend {
	t.Helper()
	b, err := New(p)
	require.NoError(t, err)
	slow := &slowDeadJS{delay: delay}
	b.faultJS = func(js jetstream.JetStream) jetstream.JetStream {
		slow.JetStream = js
		return slow
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	t.Cleanup(slow.wg.Wait) // before Close
	require.NoError(t, b.Start(t.Context()))
	return b
}

// leaseAgainWhile leases from b's queue until settled closes (and for
// after more), acks whatever it is handed (a worker that ran the task
// again and succeeded) and returns the ids it acked.
func leaseAgainWhile(t *testing.T, b *Backend, queueName string, settled <-chan struct{}, after time.Duration) []string {
	t.Helper()
	var acked []string
	stop := make(chan struct{})
	go func() {
		<-settled
		time.Sleep(after)
		close(stop)
	}()
	for {
		lctx, cancel := context.WithCancel(t.Context())
		go func() {
			select {
			case <-stop:
			case <-lctx.Done():
			}
			cancel()
		}()
		ds, err := b.Lease(lctx, queueName, 1, 30*time.Second)
		cancel()
		if errors.Is(err, context.Canceled) {
			return acked
		}
		require.NoError(t, err)
		for _, d := range ds {
			if b.Ack(t.Context(), d) == nil {
				acked = append(acked, d.Task.ID)
			}
		}
	}
}

// TestSlowDeadLetterKeepsItsLease: a DeadLetter whose copy takes three
// AckWaits to be stored (a dead-letter stream electing a leader), well
// within the lease the pool was promised. The lease keeper used to skip a
// delivery whose settlement held its receipt, so the server delivered the
// task again after AckWait: its copy not stored yet, the redelivery was
// handed out, ran and succeeded, and then the first settlement stored the
// dead letter and reported "dead-lettered": two outcomes, the task run
// twice at once. The lease is now renewed while the settlement runs.
func TestSlowDeadLetterKeepsItsLease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := openSlowDead(t, Params{Config: Config{Mode: ModeEmbedded, AckWait: ackWait,
		Embedded: embedded.Config{StoreDir: t.TempDir()}}}, 3*ackWait)
	const qname = "slowdead"
	// A keyed task, and one whose key Prepare generated.
	for _, tk := range []*task.Task{{ID: "keyed", Kind: "k", Queue: qname}, {Kind: "k", Queue: qname}} {
		require.NoError(t, b.Enqueue(ctx, tk))
		d := leaseOne(t, b, qname) // a lease of 5 AckWaits
		settled := make(chan struct{})
		var derr error
		go func() {
			defer close(settled)
			derr = b.DeadLetter(ctx, d, "permanent failure")
		}()
		again := leaseAgainWhile(t, b, qname, settled, ackWait)
		require.NoError(t, derr, "the dead letter was stored within the lease")
		require.Empty(t, again, "task %s handed out again and succeeded while its dead letter was being stored", d.Task.ID)
	}
	dead, err := b.ListDead(ctx, qname, 10)
	require.NoError(t, err)
	require.Len(t, dead, 2)
}

// TestSettlementPastItsLeaseReportsNoOutcome: a DeadLetter whose copy is
// stored only after the lease ended. The settlement is bounded by the
// lease: it fails (the source is told nothing) rather than report a dead
// letter after the server delivered the task again to a worker that ran
// it (it used to wait for the copy and report it: two outcomes). The
// copy, stored late beside that success, stays listed, as a dead letter
// whose term was lost does (docs/jetstream.md, "A dead letter is final"). Its error
// is queue.ErrLeaseLost, which callers branch on (the worker pool logs a
// lost lease, not a failure); it used to be the context's
// DeadlineExceeded alone.
func TestSettlementPastItsLeaseReportsNoOutcome(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := openSlowDead(t, Params{Config: Config{Mode: ModeEmbedded, AckWait: ackWait,
		Embedded: embedded.Config{StoreDir: t.TempDir()}}}, 4*ackWait)
	const qname = "pastlease"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qname}))
	d := leaseOne(t, b, qname)
	require.NoError(t, b.Extend(ctx, d, 3*ackWait/2))
	settled := make(chan struct{})
	var derr error
	go func() {
		defer close(settled)
		derr = b.DeadLetter(context.Background(), d, "permanent failure") // the caller sets no bound
	}()
	again := leaseAgainWhile(t, b, qname, settled, 3*ackWait)
	<-settled
	require.Equal(t, []string{"t"}, again, "the server delivers the task again once its lease ended")
	require.Error(t, derr, "the dead letter was not stored within the lease: no outcome to report beside the redelivery's")
	require.ErrorIs(t, derr, queue.ErrLeaseLost, "cut short by the lease's end: the lease is lost (callers branch on it)")
	require.ErrorIs(t, derr, context.DeadlineExceeded)
}

// TestSettlementWhoseLeaseRanOutUnrenewedReportsNoOutcome: the network to
// the server freezes (a partition) while a DeadLetter waits for its copy
// to be stored, for three AckWaits: the lease keeper's in-progress acks
// are not heard, the server delivers the task again to another process,
// which runs it and succeeds. The copy is then stored (within the lease
// the pool was promised). The settlement used to term the message and
// report "dead-lettered" beside that success; it now sees the server's
// AckWait ran out unrenewed and fails with queue.ErrLeaseLost (the
// source is told nothing by it).
func TestSettlementWhoseLeaseRanOutUnrenewedReportsNoOutcome(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 10*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := netfault.NewProxy(t, srv.NATS().Addr().String())
	const (
		ackWait = time.Second
		qname   = "partitioned"
	)
	a := openSlowDead(t, Params{Config: Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: ackWait}}, 4*ackWait)
	other := openTestBackend(t, Config{URLs: []string{srv.ClientURL()}, AckWait: ackWait})
	require.NoError(t, a.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qname}))
	d := leaseOne(t, a, qname)
	require.NoError(t, a.Extend(ctx, d, 30*time.Second)) // the pool's lease
	settled := make(chan struct{})
	var derr error
	go func() {
		defer close(settled)
		derr = a.DeadLetter(ctx, d, "permanent failure")
	}()
	proxy.Freeze()
	thawed := make(chan struct{})
	go func() {
		defer close(thawed)
		time.Sleep(3 * ackWait)
		proxy.Thaw()
	}()
	again := leaseAgainWhile(t, other, qname, settled, ackWait)
	<-thawed
	require.Equal(t, []string{"t"}, again, "the server delivers the task again once its AckWait ran out unrenewed")
	require.ErrorIs(t, derr, queue.ErrLeaseLost, "dead-lettered must not be reported beside the redelivery's success")
}

// TestFailedSettlementIsNotRenewed: a settlement that failed leaves its
// delivery to the server, which delivers it again after its AckWait; the
// lease keeper used to renew it up to the whole lease the pool was
// promised (30 s by default), holding the task that long.
func TestFailedSettlementIsNotRenewed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: ackWait, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qname = "failedsettle"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qname}))
	d := leaseOne(t, b, qname)
	require.NoError(t, b.Extend(ctx, d, 30*time.Second))
	start := time.Now()
	cut, cancel := context.WithCancel(ctx)
	cancel() // the settlement is cut short before its copy is stored
	err := b.DeadLetter(cut, d, "permanent failure")
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, queue.ErrLeaseLost, "cut short by its caller (a Stop), not by the lease: reported as such")
	leaseUntil := d.LeaseUntil
	lctx, lcancel := context.WithTimeout(ctx, 4*ackWait)
	defer lcancel()
	ds, err := b.Lease(lctx, qname, 1, 30*time.Second)
	require.NoError(t, err, "delivered again after AckWait, not after the lease promised")
	require.Len(t, ds, 1)
	require.Equal(t, "t", ds[0].Task.ID)
	require.NoError(t, b.Ack(ctx, ds[0]))
	require.WithinDuration(t, start, leaseUntil, ackWait, "the failed delivery's lease ends with the server's AckWait")
}

// firstFaultJS is a JetStream API whose first publish that match
// selects is answered by first (a fault); the others go through.
type firstFaultJS struct {
	jetstream.JetStream
	match func(m *nats.Msg) bool
	first func(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error)
	once  sync.Once
}

func (f *firstFaultJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if f.match(m) {
		faulty := false
		f.once.Do(func() { faulty = true })
		if faulty {
			return f.first(ctx, m)
		}
	}
	return f.JetStream.PublishMsg(ctx, m, opts...)
}

// isDeadCopy matches a dead-letter copy.
func isDeadCopy(m *nats.Msg) bool { return strings.Contains(m.Subject, ".dead.") }

// lostAnswers are the faults of a copy's first publish: stored, its
// answer lost (a reply dropped, a leader gone), or answered that the same
// Nats-Msg-Id is being stored (error 10158).
func lostAnswers() map[string]func(real jetstream.JetStream) func(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
	return map[string]func(real jetstream.JetStream) func(context.Context, *nats.Msg) (*jetstream.PubAck, error){
		"answer lost": func(real jetstream.JetStream) func(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
			return func(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
				if _, err := real.PublishMsg(ctx, m); err != nil {
					return nil, err
				}
				<-ctx.Done()
				return nil, ctx.Err()
			}
		},
		"in process": func(jetstream.JetStream) func(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
			return func(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
				return nil, fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: errDupInProcess, Description: "duplicate message id is in process"})
			}
		},
	}
}

// openFirstFault starts a backend from cfg whose first publish that
// match selects is answered by the fault first makes, and closes it when
// t ends.
func openFirstFault(t *testing.T, cfg Config, match func(*nats.Msg) bool,
	first func(real jetstream.JetStream) func(context.Context, *nats.Msg) (*jetstream.PubAck, error)) *Backend {
	t.Helper()
	b, err := New(Params{Config: cfg})
	require.NoError(t, err)
	b.faultJS = func(js jetstream.JetStream) jetstream.JetStream {
		return &firstFaultJS{JetStream: js, match: match, first: first(js)}
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	require.NoError(t, b.Start(t.Context()))
	return b
}

// TestDeadLetterCopyWhoseAnswerIsLostIsSentAgain: the first dead-letter
// copy is stored but its answer is lost (a reply dropped, a leader gone),
// or the server answers that the same Nats-Msg-Id is being stored (error
// 10158). The copy is sent again after Config.PublishTimeout (or a pause)
// with its Nats-Msg-Id, one dead letter is stored, and DeadLetter
// returns: it used to wait for the lost answer until its context ended,
// the whole lease (30 s in a worker pool), and then fail.
func TestDeadLetterCopyWhoseAnswerIsLostIsSentAgain(t *testing.T) {
	t.Parallel()
	const publishTimeout = time.Second
	for name, first := range lostAnswers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := openFirstFault(t, Config{Mode: ModeEmbedded, AckWait: time.Second, PublishTimeout: publishTimeout,
				Embedded: embedded.Config{StoreDir: t.TempDir()}}, isDeadCopy, first)
			const qname = "lostanswer"
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qname}))
			d := leaseOne(t, b, qname)
			require.NoError(t, b.Extend(ctx, d, 20*time.Second))
			start := time.Now()
			require.NoError(t, b.DeadLetter(ctx, d, "permanent failure"))
			require.Less(t, time.Since(start), 3*publishTimeout, "sent again after the publish timeout, not waited for until the lease ends")
			require.Equal(t, "permanent failure", d.DeadReason)
			dead, err := b.ListDead(ctx, qname, 10)
			require.NoError(t, err)
			require.Len(t, dead, 1)
		})
	}
}
