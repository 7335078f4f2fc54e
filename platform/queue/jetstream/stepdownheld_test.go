package jetstream_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// TestStepDownDoesNotHandOutAHeldTaskAgain (PLBA_TEST_CLUSTER=1
// PLBA_TEST_CHURN=1, as TestStepDownRedeliversAMessageInFlight, whose
// server behaviour it meets at the backend level) leases a task stored
// more than an AckWait before, steps the consumer leader down, and leases
// again for most of an AckWait while the first delivery is held: the task
// is not handed out a second time. Two things see to it (holding.go): the
// in-progress ack sent when the old message reached the buffer, which
// makes the new leader see the true delivery time, and, should the server
// deliver the message again all the same, the process holding it does not
// hand that delivery out. The first delivery's ack then settles the task
// for good. It logs whether the server delivered the message again.
func TestStepDownDoesNotHandOutAHeldTaskAgain(t *testing.T) {
	if os.Getenv("PLBA_TEST_CLUSTER") == "" || os.Getenv("PLBA_TEST_CHURN") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 and PLBA_TEST_CHURN=1 to run a three-node cluster and step its consumer leader down")
	}
	const (
		ackWait  = 6 * time.Second
		qname    = "held"
		consumer = "held-workers"
	)
	srvs := natstest.StartCluster(t, 3)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	b := jetstream.OpenTestBackend(t, jetstream.Config{URL: strings.Join(urls, ","), Replicas: 3, AckWait: ackWait,
		StreamPrefix: "STEPHELD", Consumer: consumer, Prefetch: 4, MaxPrefetch: 4})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	nc, err := nats.Connect(urls[0])
	require.NoError(t, err)
	defer nc.Close()

	require.NoError(t, b.Declare(ctx, qname))
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "s1", Kind: "k", Queue: qname}))
	// The condition is the message's age itself: stored more than an
	// AckWait before its first delivery.
	time.Sleep(ackWait + time.Second)

	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	ds, err := b.Lease(lctx, qname, 1, 4*ackWait) // kept alive by the lease keeper
	lcancel()
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first := ds[0]
	delivered := time.Now()

	stream := jetstream.WorkStream(t, b, qname)
	js, err := njs.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(ctx, stream, consumer)
	require.NoError(t, err)
	consumerInfo := func(wait time.Duration) (*njs.ConsumerInfo, error) {
		ictx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		return cons.Info(ictx)
	}
	info, err := consumerInfo(5 * time.Second)
	require.NoError(t, err)
	oldLeader := info.Cluster.Leader
	resp, err := nc.Request("$JS.API.CONSUMER.LEADER.STEPDOWN."+stream+"."+consumer, nil, 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(resp.Data), `"success":true`)
	require.Eventually(t, func() bool {
		info, err := consumerInfo(time.Second)
		return err == nil && info.Cluster.Leader != "" && info.Cluster.Leader != oldLeader
	}, 10*time.Second, 50*time.Millisecond, "a new consumer leader")

	lctx, lcancel = context.WithTimeout(ctx, time.Until(delivered.Add(ackWait-time.Second)))
	again, err := b.Lease(lctx, qname, 1, time.Second)
	lcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the task was handed out again %v after its first delivery, while held",
		time.Since(delivered).Round(time.Millisecond))
	require.Empty(t, again)
	info, err = consumerInfo(5 * time.Second)
	require.NoError(t, err)
	t.Logf("after the step-down (leader %s -> %s): the server delivered the task again: %v (redelivered %d, ack pending %d)",
		oldLeader, info.Cluster.Leader, info.NumRedelivered > 0, info.NumRedelivered, info.NumAckPending)

	require.NoError(t, b.Ack(ctx, first))
	require.Eventually(t, func() bool {
		info, err := consumerInfo(time.Second)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, 10*time.Second, 50*time.Millisecond, "acked through the first delivery")
	lctx, lcancel = context.WithTimeout(ctx, 2*time.Second)
	after, err := b.Lease(lctx, qname, 1, time.Second)
	lcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "no delivery after the ack")
	require.Empty(t, after)
}
