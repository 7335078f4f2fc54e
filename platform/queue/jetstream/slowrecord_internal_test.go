package jetstream

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// slowRecordJS is a JetStream API whose finished-key records (published
// asynchronously by a keyed Ack without ack_sync) reach the server only
// after delay (a stream electing a leader, a slow disk).
type slowRecordJS struct {
	jetstream.JetStream
	delay time.Duration
	wg    sync.WaitGroup
	sent  atomic.Bool // a record has gone to the server
}

func (s *slowRecordJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if !strings.Contains(m.Subject, ".done.") {
		return s.JetStream.PublishMsgAsync(m, opts...)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(s.delay)
		s.sent.Store(true)
		// Its outcome comes through the backend's callbacks.
		_, _ = s.JetStream.PublishMsgAsync(m, opts...)
	}()
	return nil, nil
}

// TestAckWaitingForItsRecordKeepsItsLease: a keyed Ack without ack_sync
// returns once its finished-key record is published, and its ack goes out
// when the server stored the record, here three AckWaits later. The
// lease keeper used to stop renewing the delivery when Ack returned: the
// server delivered the task again after AckWait, before the record was
// stored, so its redelivery found no marker and was handed out (the task
// ran twice, its source could hear two outcomes). It is renewed now
// until the ack goes out, and nothing is handed out again.
func TestAckWaitingForItsRecordKeepsItsLease(t *testing.T) {
	t.Parallel()
	ackWaitingForItsRecord(t, 30*time.Second)
}

// TestAckWaitingForItsRecordOutlivesItsLease: a pool's lease that ends
// before the record is stored (an Ack near the end of a short lease, a
// record slower than the rest of it) does not end the renewals: the ack
// is still to go out. They stopped at the lease's end, and the task was
// handed out again before its record was stored.
func TestAckWaitingForItsRecordOutlivesItsLease(t *testing.T) {
	t.Parallel()
	ackWaitingForItsRecord(t, 2*time.Second)
}

// ackWaitingForItsRecord acks a delivery leased for lease whose
// finished-key record takes 3 s, with an AckWait of 1 s: nothing is
// handed out meanwhile, and the queue is empty once the record is stored.
func ackWaitingForItsRecord(t *testing.T, lease time.Duration) {
	ctx := t.Context()
	const (
		ackWait = time.Second
		delay   = 3 * ackWait
	)
	b, err := New(Params{Config: Config{Mode: ModeEmbedded, AckWait: ackWait, PublishTimeout: 4 * delay,
		Embedded: embedded.Config{StoreDir: t.TempDir()}}})
	require.NoError(t, err)
	slow := &slowRecordJS{delay: delay}
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
	require.NoError(t, b.Start(ctx))
	const qname = "slowrecord"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: qname}))
	ds, err := b.Lease(ctx, qname, 1, lease) // the pool's lease
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, b.Ack(ctx, ds[0]))
	require.False(t, slow.sent.Load(), "Ack does not wait for the record without ack_sync")
	lctx, cancel := context.WithTimeout(ctx, delay+2*ackWait)
	defer cancel()
	again, err := b.Lease(lctx, qname, 1, 30*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded, "handed out again while its ack waited for its record: %v", again)
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qname)
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 5*time.Second, 20*time.Millisecond, "acked once its record was stored")
}
