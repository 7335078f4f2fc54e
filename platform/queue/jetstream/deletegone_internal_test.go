package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// A message that is gone by the time the backend deletes it (the server
// deleted it for an ack, another replica re-drove or purged it) is taken
// as deleted: the server refuses the delete with "no message found"
// (err_code 10057, not wrapped as an API error by nats.go), which
// isMsgNotFound recognises. Declare's clean-up of acked messages (dropAcked)
// met it when another host acked in between, and failed the host's start
// (TestClusterFailover under -race).
func TestDeletingAGoneMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	s, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "GONE", Subjects: []string{"gone"}})
	require.NoError(t, err)
	ack, err := b.js.Publish(ctx, "gone", nil)
	require.NoError(t, err)
	require.NoError(t, s.DeleteMsg(ctx, ack.Sequence))
	err = s.DeleteMsg(ctx, ack.Sequence)
	require.Error(t, err)
	require.True(t, isMsgNotFound(err), "%v", err)
}
