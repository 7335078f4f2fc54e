package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// openOn opens a backend with cfg and closes it when t ends; the error of
// Open is returned, not checked.
func openOn(t *testing.T, cfg jetstream.Config) (*jetstream.Backend, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = b.Close(ctx)
		})
	}
	return b, err
}

// requireProblem checks that err is ErrSettingsDiffer's problem at key,
// naming want and have.
func requireProblem(t *testing.T, err error, sentinel error, key string, says ...string) {
	t.Helper()
	require.ErrorIs(t, err, sentinel)
	var p config.Problem
	require.ErrorAs(t, err, &p, "a configuration problem (exit 2): %v", err)
	require.Equal(t, key, p.Key, "%v", err)
	for _, s := range says {
		require.Contains(t, p.Msg, s)
	}
}

// consumerOf returns the configuration of the durable consumer of queue
// q's work stream on the server at url.
func consumerOf(t *testing.T, url, prefix, q string) njs.ConsumerConfig {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	c, err := js.Consumer(t.Context(), prefix+"_Q_"+q, jetstream.DefaultConsumer)
	require.NoError(t, err)
	return c.CachedInfo().Config
}

// TestHostsMustAgreeOnSharedSettings: a host started against streams and
// consumers another host made with other settings every host must share
// refuses to start naming the key, instead of changing them under the
// other host, which went on acting on its own values (an ack_wait of 30s
// kept its deliveries alive only every 15s, while the consumer, updated
// to 5s by the second host, delivered them again to others after 5s).
func TestHostsMustAgreeOnSharedSettings(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	url := srv.ClientURL()
	first, err := openOn(t, jetstream.Config{URL: url, MaxDeliver: 3})
	require.NoError(t, err)
	require.NoError(t, first.Declare(t.Context(), "q"))

	t.Run("ack_wait", func(t *testing.T) {
		// The advisory stream's consumer, set up at start, has it too: it
		// was updated to the later host's.
		_, err := openOn(t, jetstream.Config{URL: url, MaxDeliver: 3, AckWait: 5 * time.Second})
		requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.ack_wait", "5s", "30s", `"plba-workers"`, "PLBA_ADV_plba-workers")
		require.Equal(t, jetstream.DefaultAckWait, consumerOf(t, url, "PLBA", "q").AckWait, "the first host's consumer is left alone")
		require.Equal(t, jetstream.DefaultAckWait, advisoryConsumerOf(t, url, "PLBA").AckWait, "the first host's advisory consumer is left alone")
	})
	// The dead letters' bounds: a later host's were applied to the
	// stream, under the first host's.
	for _, tc := range []struct {
		key  string
		dead jetstream.DeadConfig
		says string
	}{
		{"dead.max_age", jetstream.DeadConfig{MaxAge: time.Hour}, "1h0m0s"},
		{"dead.max_bytes", jetstream.DeadConfig{MaxBytes: 1 << 20}, "1048576"},
		{"dead.max_msgs", jetstream.DeadConfig{MaxMsgs: 100}, "100"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			_, err := openOn(t, jetstream.Config{URL: url, MaxDeliver: 3, Dead: tc.dead})
			requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream."+tc.key, tc.says, `"PLBA_DEAD"`)
			dead := streamOf(t, url, "PLBA_DEAD")
			require.Equal(t, jetstream.DefaultDeadMaxAge, dead.MaxAge)
			require.Equal(t, int64(jetstream.DefaultDeadMaxBytes), dead.MaxBytes)
			require.Equal(t, int64(-1), dead.MaxMsgs)
		})
	}
	t.Run("max_deliver", func(t *testing.T) {
		b, err := openOn(t, jetstream.Config{URL: url, MaxDeliver: 7})
		require.NoError(t, err)
		err = b.Declare(t.Context(), "q")
		requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.max_deliver", "7", "3")
		require.Equal(t, 3, consumerOf(t, url, "PLBA", "q").MaxDeliver)
	})
	t.Run("duplicate_window", func(t *testing.T) {
		_, err := openOn(t, jetstream.Config{URL: url, MaxDeliver: 3, DuplicateWindow: 10 * time.Minute})
		requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.duplicate_window", "10m0s", "2m0s")
	})
	t.Run("same settings", func(t *testing.T) {
		b, err := openOn(t, jetstream.Config{URL: url, MaxDeliver: 3})
		require.NoError(t, err)
		require.NoError(t, b.Declare(t.Context(), "q"))
	})
}

// TestHostsMustAgreeOnWorkStreamBounds: the work streams' max_msgs and
// max_bytes and their consumers' max_ack_pending are every host's too. A
// later host applied its own to the stream or consumer the first host
// made: a lower max_msgs had the first host's Enqueue wait for room where
// it counted on some (a full work stream refuses new tasks), a higher one
// or none took away the back-pressure it counted on, and a lower
// max_ack_pending bounded the deliveries in flight of every host.
func TestHostsMustAgreeOnWorkStreamBounds(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	url := srv.ClientURL()
	base := jetstream.Config{URL: url, MaxDeliver: 3, MaxMsgs: 100}
	first, err := openOn(t, base)
	require.NoError(t, err)
	require.NoError(t, first.Declare(t.Context(), "q"))
	unchanged := func(t *testing.T) {
		t.Helper()
		st := streamOf(t, url, "PLBA_Q_q")
		require.Equal(t, int64(100), st.MaxMsgs, "the first host's stream is left alone")
		require.Equal(t, int64(-1), st.MaxBytes, "the first host's stream is left alone")
		require.Equal(t, jetstream.DefaultMaxAckPending, consumerOf(t, url, "PLBA", "q").MaxAckPending, "the first host's consumer is left alone")
	}
	for _, tc := range []struct {
		name, key string
		set       func(*jetstream.Config)
		says      []string
	}{
		{"max_msgs lower", "max_msgs", func(c *jetstream.Config) { c.MaxMsgs = 50 }, []string{"50", "100", `"PLBA_Q_q"`}},
		{"max_msgs none", "max_msgs", func(c *jetstream.Config) { c.MaxMsgs = 0 }, []string{"0 (no bound)", "100"}},
		{"max_bytes", "max_bytes", func(c *jetstream.Config) { c.MaxBytes = 1 << 20 }, []string{"1048576", "-1 (no bound)"}},
		{"max_ack_pending", "max_ack_pending", func(c *jetstream.Config) { c.MaxAckPending = 500 }, []string{"500", "10000", `"plba-workers"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.set(&cfg)
			b, err := openOn(t, cfg)
			require.NoError(t, err)
			err = b.Declare(t.Context(), "q")
			requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream."+tc.key, tc.says...)
			unchanged(t)
		})
	}
	t.Run("same settings", func(t *testing.T) {
		b, err := openOn(t, base)
		require.NoError(t, err)
		require.NoError(t, b.Declare(t.Context(), "q"))
		unchanged(t)
	})
}

// TestOwnEmbeddedServerAppliesItsSettings: a host that owns its embedded
// server (one process per store) is the only one that set its streams
// up: a new configuration is applied on its next start.
func TestOwnEmbeddedServerAppliesItsSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func(ackWait time.Duration) *jetstream.Backend {
		b, err := openOn(t, jetstream.Config{AckWait: ackWait, Embedded: embedded.Config{StoreDir: dir}})
		require.NoError(t, err)
		require.NoError(t, b.Declare(t.Context(), "q"))
		return b
	}
	b := open(30 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.Close(ctx))
	open(5 * time.Second)
}

// TestReplicasOnAServerOutsideACluster: replicas: 3 against a server that
// is not in a cluster is a configuration problem naming the key.
func TestReplicasOnAServerOutsideACluster(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	_, err := openOn(t, jetstream.Config{URL: srv.ClientURL(), Replicas: 3})
	requireProblem(t, err, jetstream.ErrInvalidConfig, "queue.jetstream.replicas", "3", "not part of a JetStream cluster")
}

// TestClusterHostsMustAgreeOnReplicas: on a three-node cluster whose
// streams have three replicas, a host configured with one (the default)
// refuses to start, rather than taking every stream down to one copy; a
// host with three refuses a pool overrides' bucket of one.
func TestClusterHostsMustAgreeOnReplicas(t *testing.T) {
	t.Parallel()
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 to run a three-node cluster")
	}
	srvs := startCluster(t, 3)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	url := strings.Join(urls, ",")
	r3, err := openOn(t, jetstream.Config{URL: url, Replicas: 3})
	require.NoError(t, err)
	require.NoError(t, r3.Declare(t.Context(), "q"))

	_, err = openOn(t, jetstream.Config{URL: url})
	requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.replicas", "1", "3")

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	// A three-replica stream's info is answered by its leader: on a
	// loaded machine (the race detector, other tests' clusters) that takes
	// longer than the client's default of five seconds.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, 3, s.CachedInfo().Config.Replicas, "stream %s keeps its replicas", name)
	}
	require.NoError(t, names.Err())

	// The pool overrides' bucket too: it was bound as it was found, at
	// first use, its replicas unchecked.
	_, err = js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: "OVR_OVERRIDES", History: 1, Replicas: 1})
	require.NoError(t, err)
	_, err = openOn(t, jetstream.Config{URL: url, Replicas: 3, StreamPrefix: "OVR"})
	requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.replicas", "3", "1", `"KV_OVR_OVERRIDES"`)
}

// TestClusterReadsMarkersFromTheLeader (PLBA_TEST_CLUSTER=1): with three
// replicas, the finished keys are read from the stream's leader, not with
// direct gets any replica answers (a follower catching up after the loss
// of a server read a stored marker as missing, and a finished task ran
// again: TestClusterNodeLossTellsEachTaskOnce); a finished key is still
// recognised when it is enqueued again.
func TestClusterReadsMarkersFromTheLeader(t *testing.T) {
	t.Parallel()
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 to run a three-node cluster")
	}
	srvs := startCluster(t, 3)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	b, err := openOn(t, jetstream.Config{URL: strings.Join(urls, ","), Replicas: 3})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: "order-1"}))
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ds, err := b.Lease(lctx, "q", 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, b.Ack(ctx, ds[0]))

	// Until the ack's marker is stored the copy is held by the queued
	// task; then it is finished. It is never accepted as a new task.
	require.Eventually(t, func() bool {
		again := &task.Task{Kind: "k", Queue: "q", Key: "order-1"}
		require.NoError(t, b.Enqueue(ctx, again))
		_, held := task.Held(again)
		o, _, finished := task.Finished(again)
		require.True(t, held || finished, "a copy of a finished task accepted")
		return finished && o == task.Succeeded
	}, 20*time.Second, 20*time.Millisecond, "the finished key is recognised")

	nc, err := nats.Connect(urls[0])
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	// The stream's info comes from its leader, which may be moving on a
	// loaded machine (a request without an answer in time): asked again.
	var s njs.Stream
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err = js.Stream(ictx, jetstream.DefaultStreamPrefix+"_DONE")
		assert.NoError(c, err)
	}, 40*time.Second, 100*time.Millisecond)
	require.False(t, s.CachedInfo().Config.AllowDirect, "markers are not read from any replica")
}

// TestHostsStartingTogetherMustAgree: two hosts with different shared
// settings start at the same instant on a new stream prefix. One of them
// sets the streams and consumers up; the other refuses to start naming
// the key, and what the server keeps is the first's. Before, both checked
// before either created: both found nothing and both started, the later
// create-or-update overwriting the first's settings under it.
func TestHostsStartingTogetherMustAgree(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	url := srv.ClientURL()
	type host struct {
		cfg jetstream.Config
		err error
	}
	start := func(h *host, prefix string, gate <-chan struct{}) {
		<-gate
		h.cfg.URL, h.cfg.StreamPrefix = url, prefix
		b, err := openOn(t, h.cfg)
		if err == nil {
			err = b.Declare(t.Context(), "q")
		}
		h.err = err
	}
	for i := range 24 {
		prefix := fmt.Sprintf("RACE%d", i)
		a := &host{cfg: jetstream.Config{MaxDeliver: 3}}
		b := &host{cfg: jetstream.Config{MaxDeliver: 3, AckWait: 20 * time.Second}}
		key, onServer := "queue.jetstream.ack_wait", func() any { return consumerOf(t, url, prefix, "q").AckWait }
		want := []any{jetstream.DefaultAckWait, 20 * time.Second}
		if i%2 == 1 {
			b.cfg = jetstream.Config{MaxDeliver: 3, DuplicateWindow: 3 * time.Minute}
			key, onServer = "queue.jetstream.duplicate_window", func() any { return streamOf(t, url, prefix+"_Q_q").Duplicates }
			want = []any{jetstream.DefaultDuplicateWindow, 3 * time.Minute}
		}
		gate := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { start(a, prefix, gate) })
		wg.Go(func() { start(b, prefix, gate) })
		close(gate)
		wg.Wait()
		switch {
		case a.err == nil && b.err == nil:
			t.Fatalf("%s: both hosts started with different %s; the server has %v", prefix, key, onServer())
		case a.err == nil:
			requireProblem(t, b.err, jetstream.ErrSettingsDiffer, key)
			require.Equal(t, want[0], onServer(), prefix)
		case b.err == nil:
			requireProblem(t, a.err, jetstream.ErrSettingsDiffer, key)
			require.Equal(t, want[1], onServer(), prefix)
		default:
			t.Fatalf("%s: neither host started: %v; %v", prefix, a.err, b.err)
		}
	}
}

// advisoryConsumerOf returns the configuration of the durable consumer
// of the advisory stream of prefix on the server at url.
func advisoryConsumerOf(t *testing.T, url, prefix string) njs.ConsumerConfig {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	c, err := js.Consumer(t.Context(), prefix+"_ADV_"+jetstream.DefaultConsumer, jetstream.DefaultConsumer)
	require.NoError(t, err)
	return c.CachedInfo().Config
}

// streamOf returns the configuration of the stream name on the server at
// url.
func streamOf(t *testing.T, url, name string) njs.StreamConfig {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(t.Context(), name)
	require.NoError(t, err)
	return s.CachedInfo().Config
}

// TestStorageIsComparedNamingTheKey: the server refuses to change a
// stream's storage, so a host whose queue.jetstream.storage differs from
// the streams' failed its start with the server's error, which named no
// key (exit 1), whether it owned its embedded server or not. It is a
// configuration problem at queue.jetstream.storage (exit 2), and the
// streams are left as they are.
func TestStorageIsComparedNamingTheKey(t *testing.T) {
	t.Parallel()
	t.Run("shared server", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
		url := srv.ClientURL()
		first, err := openOn(t, jetstream.Config{URL: url})
		require.NoError(t, err)
		require.NoError(t, first.Declare(t.Context(), "q"))
		_, err = openOn(t, jetstream.Config{URL: url, Storage: jetstream.StorageMemory})
		requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.storage", "memory, but", "file storage", `"PLBA_DEAD"`, "set storage: file")
		require.Equal(t, njs.FileStorage, streamOf(t, url, "PLBA_DEAD").Storage)
		require.Equal(t, njs.FileStorage, streamOf(t, url, "PLBA_Q_q").Storage)
	})
	t.Run("own embedded server", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		b, err := openOn(t, jetstream.Config{Embedded: embedded.Config{StoreDir: dir}})
		require.NoError(t, err)
		require.NoError(t, b.Declare(t.Context(), "q"))
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		require.NoError(t, b.Close(ctx))
		_, err = openOn(t, jetstream.Config{Storage: jetstream.StorageMemory, Embedded: embedded.Config{StoreDir: dir}})
		requireProblem(t, err, jetstream.ErrSettingsDiffer, "queue.jetstream.storage", "memory, but", "file storage")
	})
}
