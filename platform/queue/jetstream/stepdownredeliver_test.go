package jetstream_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/natstest"
)

// TestStepDownRedeliversAMessageInFlight (PLBA_TEST_CLUSTER=1
// PLBA_TEST_CHURN=1, as the churn probe: it asserts the server's behaviour,
// and its timing is the trigger, so CI does not run it) shows the
// server behaviour behind the churn probe's doubles, at the nats.go level:
// on a three-node cluster, a message stored more than an AckWait before it
// is delivered, and delivered once (in flight, not acked), is delivered
// again within about a second and a half of a consumer leader step-down,
// long before its AckWait runs out. The consumer leader replicates a
// delivery with the message's stored time, not the time it was delivered
// (nats-server 2.15 consumer.go deliverMsg: updateDelivered(dseq, seq, dc,
// pmsg.ts)); a new leader reads that as the delivery time and finds the
// delivery expired. A settlement sent on the first delivery's reply subject
// still settles the message for the new leader (processAckMsg looks the
// pending entry up by stream sequence).
func TestStepDownRedeliversAMessageInFlight(t *testing.T) {
	if os.Getenv("PLBA_TEST_CLUSTER") == "" || os.Getenv("PLBA_TEST_CHURN") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 and PLBA_TEST_CHURN=1 to run a three-node cluster and step its consumer leader down")
	}
	const ackWait = 6 * time.Second
	srvs := natstest.StartCluster(t, 3)
	nc, err := nats.Connect(srvs[0].ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, err = js.CreateStream(ctx, njs.StreamConfig{Name: "SD", Subjects: []string{"sd.>"}, Replicas: 3})
	require.NoError(t, err)
	cons, err := js.CreateConsumer(ctx, "SD", njs.ConsumerConfig{
		Durable: "C", AckPolicy: njs.AckExplicitPolicy, AckWait: ackWait, Replicas: 3,
	})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "sd.a", []byte("x"))
	require.NoError(t, err)

	// The condition is the message's age itself: stored more than an
	// AckWait before its first delivery.
	time.Sleep(ackWait + time.Second)

	first := fetchOne(ctx, t, cons, 5*time.Second)
	delivered := time.Now()
	md1, err := first.Metadata()
	require.NoError(t, err)
	require.EqualValues(t, 1, md1.NumDelivered)

	info, err := cons.Info(ctx)
	require.NoError(t, err)
	oldLeader := info.Cluster.Leader
	resp, err := nc.Request("$JS.API.CONSUMER.LEADER.STEPDOWN.SD.C", nil, 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(resp.Data), `"success":true`)
	require.Eventually(t, func() bool {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		info, err := cons.Info(ictx)
		return err == nil && info.Cluster.Leader != "" && info.Cluster.Leader != oldLeader
	}, 10*time.Second, 50*time.Millisecond, "a new consumer leader")

	// Ask for the message again until the first delivery's AckWait would
	// end (less a second of margin): it must not come in that time, and
	// does.
	again, err := cons.Fetch(1, njs.FetchMaxWait(time.Until(delivered.Add(ackWait-time.Second))))
	require.NoError(t, err)
	var second njs.Msg
	for m := range again.Messages() {
		second = m
	}
	require.NotNil(t, second, "no second delivery while the first was in flight")
	md2, err := second.Metadata()
	require.NoError(t, err)
	t.Logf("second delivery %v after the first (AckWait %v): stream seq %d, delivery seq %d -> %d, deliveries %d",
		time.Since(delivered).Round(time.Millisecond), ackWait, md2.Sequence.Stream,
		md1.Sequence.Consumer, md2.Sequence.Consumer, md2.NumDelivered)
	require.Equal(t, md1.Sequence.Stream, md2.Sequence.Stream)
	require.EqualValues(t, 2, md2.NumDelivered)
	require.Less(t, time.Since(delivered), ackWait, "the second delivery came while the first was in flight")

	// The first delivery's reply subject still settles the message: the
	// new leader keys its pending entry by stream sequence.
	require.NoError(t, first.DoubleAck(ctx))
	require.Eventually(t, func() bool {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		info, err := cons.Info(ictx)
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream == md1.Sequence.Stream
	}, 10*time.Second, 50*time.Millisecond, "acked through the first delivery")
}

func fetchOne(ctx context.Context, t *testing.T, cons njs.Consumer, wait time.Duration) njs.Msg {
	t.Helper()
	b, err := cons.Fetch(1, njs.FetchMaxWait(wait))
	require.NoError(t, err)
	var got njs.Msg
	for m := range b.Messages() {
		got = m
	}
	require.NoError(t, b.Error())
	require.NotNil(t, got, "no delivery")
	return got
}
