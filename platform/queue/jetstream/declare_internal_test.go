package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// Declare sets a queue up before its first task: its stream and durable
// consumer exist and Queues lists it. A stream the backend cannot take
// over (here: one someone made with limits retention under the queue's
// stream name) fails Declare, naming the stream, instead of the first
// Enqueue.
func TestDeclareSetsQueuesUpAhead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Declare(ctx, "alpha", "beta"))
	qs, err := b.Queues(ctx)
	require.NoError(t, err)
	require.Subset(t, qs, []string{"alpha", "beta"})
	qn, err := b.names.forQueue("alpha")
	require.NoError(t, err)
	s, err := b.js.Stream(ctx, qn.stream)
	require.NoError(t, err)
	_, err = s.Consumer(ctx, b.cfg.Consumer)
	require.NoError(t, err, "the durable consumer exists before the first Lease")

	bad, err := b.names.forQueue("gamma")
	require.NoError(t, err)
	_, err = b.js.CreateStream(ctx, jetstream.StreamConfig{Name: bad.stream, Subjects: []string{bad.subject}, Retention: jetstream.LimitsPolicy})
	require.NoError(t, err)
	err = b.Declare(ctx, "gamma")
	require.ErrorContains(t, err, bad.stream)
}
