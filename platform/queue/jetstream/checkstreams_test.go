package jetstream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// A declared queue's work stream deleted on the server makes the check
// fail, naming the queue, until the backend has set the stream up again
// (the check asks for that itself, so a host that only checks heals
// too); the queue then works.
func TestCheckFailsOnADeletedWorkStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	b := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: 2 * time.Second})
	ctx := t.Context()
	require.NoError(t, b.Declare(ctx, "checked", "other"))
	require.NoError(t, b.Check(ctx))

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, "PLBA_Q_checked"))

	err = b.Check(ctx)
	require.Error(t, err, "a deleted work stream reads ready")
	require.Contains(t, err.Error(), `"checked"`, "the reason names the queue")
	require.NotContains(t, err.Error(), `"other"`, "only the failing queue is named")

	waitFor(t, 20*time.Second, "the check to pass again", func() bool { return b.Check(ctx) == nil })
	_, err = js.Stream(ctx, "PLBA_Q_checked")
	require.NoError(t, err, "the stream is set up again")
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "checked"}))
	d := jetstream.LeaseOne(t, b, "checked")
	require.NoError(t, b.Ack(ctx, d))
}

// On a three-node cluster, a queue of one replica whose server is shut
// down has no leader: the check fails naming the queue while a check
// that only asks for the account's information reads ready.
func TestCheckFailsOnAWorkStreamWithoutLeader(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	srvs := startCluster(t, 3)
	ctx := t.Context()
	cfg := func(url string) jetstream.Config {
		return jetstream.Config{URL: url, AckWait: 2 * time.Second, Replicas: 1, StreamPrefix: "NOLEADER",
			PublishTimeout: 2 * time.Second}
	}
	require.NoError(t, openBackend(t, cfg(srvs[0].ClientURL())).Declare(ctx, "lonely"))
	nc, err := nats.Connect(srvs[0].ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(ctx, "NOLEADER_Q_lonely")
	require.NoError(t, err)
	leader := s.CachedInfo().Cluster.Leader
	require.NotEmpty(t, leader)
	// The checking backend talks to a server that is not the stream's
	// only replica, which is then shut down.
	var keep, lose int
	for i, srv := range srvs {
		if srv.NATS().Name() == leader {
			lose = i
		}
	}
	keep = (lose + 1) % len(srvs)
	b := openBackend(t, cfg(srvs[keep].ClientURL()))
	require.NoError(t, b.Declare(ctx, "lonely"))
	require.NoError(t, b.Check(ctx))
	require.NoError(t, srvs[lose].Shutdown(ctx))

	nc2, err := nats.Connect(srvs[keep].ClientURL())
	require.NoError(t, err)
	defer nc2.Close()
	js, err = njs.New(nc2)
	require.NoError(t, err)
	// The account answers again once the remaining servers agree on a
	// meta leader (the lost server may have been it).
	waitFor(t, 30*time.Second, "the account to answer", func() bool {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := js.AccountInfo(actx)
		return err == nil
	})
	waitFor(t, 30*time.Second, "the check to fail", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err := b.Check(cctx)
		if err != nil {
			t.Logf("check: %v", err)
		}
		return err != nil && strings.Contains(err.Error(), `"lonely"`)
	})
}
