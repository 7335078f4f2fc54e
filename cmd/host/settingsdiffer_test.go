package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auditstream"
	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// A host started against streams, consumers or key-value buckets another
// host made with other settings that every host must share, or with
// replicas: 3 against a server outside a cluster, exits 2 naming the key
// and the file that set it, and changes nothing on the server.
func TestStreamsWithOtherSettingsExit2(t *testing.T) {
	t.Parallel()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(t.Context(), opts, 30*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	url := srv.ClientURL()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	first, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URL: url}})
	require.NoError(t, err)
	require.NoError(t, first.Declare(ctx, task.DefaultQueue))
	_, err = lease.OpenKV(ctx, first.JetStream(), lease.KVConfig{}) // the sources' leases, TTL 6s
	require.NoError(t, err)
	// The admin audit stream, max_msgs 1000000.
	require.NoError(t, auditstream.New(first.JetStream, admin.AuditConfig{}, 1, nil).Start(ctx))
	require.NoError(t, first.Close(ctx))

	for _, tc := range []struct {
		name, set string
		top       string // a section of its own
		admin     string // in the admin section
		want      []string
	}{
		{"duplicate window", "duplicate_window: 10m", "", "", []string{"queue.jetstream.duplicate_window: 10m0s, but stream", "has 2m0s"}},
		{"replicas", "replicas: 3", "", "", []string{"queue.jetstream.replicas: 3, but stream", "has 1"}},
		{"replicas outside a cluster", "replicas: 3\n    stream_prefix: OTHER", "", "", []string{"queue.jetstream.replicas: 3, but the server is not part of a JetStream cluster"}},
		// The work streams' bounds and their consumers' max_ack_pending
		// were applied by the last host to set them up.
		{"max_msgs", "max_msgs: 50", "", "", []string{"queue.jetstream.max_msgs: 50, but stream", "has -1 (no bound)"}},
		{"max_ack_pending", "max_ack_pending: 500", "", "", []string{"queue.jetstream.max_ack_pending: 500, but consumer", "has 10000"}},
		// The server refuses to change a stream's storage: the host failed
		// with its error, which named no key (exit 1).
		{"storage", "storage: memory", "", "", []string{"queue.jetstream.storage: memory, but stream", "has file storage"}},
		// The leases' bucket was checked at the first lease only: the host
		// started, and its exclusive sources never ran.
		{"lease ttl", "stream_prefix: LEASES", "sources:\n  lease:\n    ttl: 3s\n", "", []string{"sources.lease.ttl: 3s, but the leases bucket \"plba_leases\"", "has 6s"}},
		// The audit stream was created or updated by every host: the last
		// one's max_msgs applied to all. (The stream set by name: by
		// default it follows the stream prefix.)
		{"audit max_msgs", "stream_prefix: AUDIT", "", "  audit:\n    stream: PLBA_AUDIT\n    max_msgs: 50\n", []string{"admin.audit.max_msgs: 50, but the audit stream \"PLBA_AUDIT\"", "has 1000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "host.yaml", "admin:\n  listen: 127.0.0.1:0\n"+tc.admin+"queue:\n  backend: jetstream\n  jetstream:\n    url: "+url+"\n    "+tc.set+"\n"+tc.top)
			r := runHostCmd(t, nil, "run", "--config", path)
			require.Equal(t, 2, r.code, r.stderr)
			for _, w := range append(tc.want, "host.yaml") {
				require.Contains(t, r.stderr, w)
			}
			require.NotContains(t, r.stderr, "goroutine ")
		})
	}
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URL: url}})
	require.NoError(t, err, "the first host's settings are still the server's")
	audit, err := b.JetStream().Stream(ctx, admin.DefaultAuditStream)
	require.NoError(t, err)
	require.Equal(t, int64(admin.DefaultAuditMaxMsgs), audit.CachedInfo().Config.MaxMsgs, "the first host's audit stream is left alone")
	require.NoError(t, b.Close(ctx))
}
