package platform_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestClusterStopWithinItsTimeoutWhileADeadLetterWaitsForQuorum
// (PLBA_TEST_CLUSTER=1): a host on a three-node cluster dead-letters a
// task while the dead-letter stream's leader, the server the host is
// connected to, has lost its two followers, so the copy's publish gets
// no answer. The host's stop, given 6 s, returns within them with every
// stop hook run: the pool cuts the settlement short at the end of its
// share of the time and says so, the backend closes in the rest without
// waiting for that delivery; the task's source is told nothing (the copy
// was not stored, the task is left to the server). Before, the
// settlement, begun before the stop, was bounded by its lease only (30 s),
// and the backend's close waited for it to the deadline.
func TestClusterStopWithinItsTimeoutWhileADeadLetterWaitsForQuorum(t *testing.T) {
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 to run a three-node cluster")
	}
	srvs := natstest.StartCluster(t, 3)
	const id = "CS"
	rec := &told{outcomes: map[string][]task.Outcome{}, reasons: map[string][]string{}, handled: map[string]int{}}
	emit := make(chan []string, 1)
	started, release := make(chan struct{}, 1), make(chan struct{})
	cfg := load(t, "queue.backend=jetstream", "queue.jetstream.url="+srvs[0].ClientURL(),
		"queue.jetstream.replicas=3", "queue.jetstream.stream_prefix="+id, "queue.jetstream.ack_wait=3s",
		"workers.orders.concurrency=1", "workers.orders.lease=30s")
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}),
		fx.Provide(source.AsSource(func() *orders { return &orders{emit: emit, rec: rec} })),
		worker.SupplyRoute(task.Route{Kind: "order", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			started <- struct{}{}
			<-release
			return task.Permanentf("refused")
		})}))
	app.RequireStart()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			close(release)
			_ = app.Stop(context.Background())
		}
	})

	// The dead-letter stream's leader is the host's server.
	nc, err := nats.Connect(srvs[0].ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	dead := id + "_DEAD"
	require.Eventually(t, func() bool {
		if srvs[0].NATS().JetStreamIsStreamLeader("$G", dead) {
			return true
		}
		_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+dead, []byte(`{"placement":{"preferred":"n1"}}`), 2*time.Second)
		return false
	}, 30*time.Second, 100*time.Millisecond, "n1 leads %s", dead)

	emit <- []string{"order-1"}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not start")
	}
	// Its followers gone, the leader cannot store the copy, nor answer.
	for _, s := range srvs[1:] {
		require.NoError(t, s.Shutdown(t.Context()))
	}
	close(release)
	time.Sleep(500 * time.Millisecond) // the copy's publish is waiting

	const timeout = 6 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	began := time.Now()
	err = app.Stop(ctx)
	took := time.Since(began)
	stopped = true
	t.Logf("stopped in %v: %v", took.Round(time.Millisecond), err)
	require.Less(t, took, timeout, "the stop overran its timeout")
	// Every stop hook ran (fx reports a bare deadline when one is still
	// running), and the pool says what it could not settle.
	require.ErrorContains(t, err, "1 settlements cut short")
	require.NotContains(t, err.Error(), "unsettled", "the backend waited for a delivery its pool had left")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Empty(t, rec.outcomes["order-1"], "the source told an outcome that did not happen")
}
