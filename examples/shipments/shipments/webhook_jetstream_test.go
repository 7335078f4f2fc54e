package shipments

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// An event whose notice the queue refuses for good (JetStream carries no
// key with a line break, so a shipment id with one is refused with
// queue.ErrInvalidTask) is answered 400: not 503 with Retry-After, which
// would have the warehouse retry an event that can never be queued.
func TestWebhookEventTheQueueRefusesForGoodIsNotRetried(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{
		Mode: jetstream.ModeEmbedded, Embedded: embedded.Config{StoreDir: t.TempDir()},
	}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	h := webhook(testConfig(), b, zap.NewNop()).Handler

	ev := `{"shipment":"s-1\n","order":"o-17","email":"ada@example.com","carrier":"DHL","tracking":"JD0123"}`
	w := serve(h, ev, Sign(testSecret, time.Now(), []byte(ev)))
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Empty(t, w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "the queue refuses")

	w = serve(h, testEvent, Sign(testSecret, time.Now(), []byte(testEvent)))
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String(), "the queue takes a good event")
}
