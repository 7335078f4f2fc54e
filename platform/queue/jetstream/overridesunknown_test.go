package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
)

// A pool override whose save left the client but got no answer (the
// network held it: the server gets it later) may have been saved: the
// error wraps queue.ErrOutcomeUnknown, and the override is indeed saved
// once the network forwards again.
func TestOverrideSaveWithoutAnswerIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, proxy := proxiedServer(t)
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}}})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	})
	store := b.Overrides()
	require.NoError(t, store.Save(ctx, "warm", queue.PoolOverride{Paused: true})) // the bucket exists

	want := queue.PoolOverride{Size: 737}
	frozen := proxy.FreezeOn(`"size":737`)
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = store.Save(sctx, "held", want)
	cancel()
	select {
	case <-frozen:
	default:
		t.Fatal("the save never reached the network")
	}
	proxy.Thaw()
	require.Error(t, err)
	require.ErrorIs(t, err, queue.ErrOutcomeUnknown, "%v", err)

	require.Eventually(t, func() bool {
		saved, err := store.Load(ctx)
		return err == nil && saved["held"] == want
	}, 20*time.Second, 20*time.Millisecond, "the save reached the server after all")
}
