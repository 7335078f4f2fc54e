package jetstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
)

// TestLeaseEndingAfterADeadLetterIsNoLostLease: a Release on the last
// allowed delivery may store its dead letter, and terminate the message,
// in the last moments of the lease (its copy offered again until then:
// copyWhenRoom). Its lease ending before Release returns changes nothing:
// the delivery is settled, as a dead letter. Release's answer used to
// say ErrLeaseLost beside ErrDeadLettered (leaseCut), and a worker pool
// giving back a delivery it did not run reads ErrLeaseLost first: it
// counted the task expired, to be delivered again, and told its source
// nothing, while the task was a dead letter.
func TestLeaseEndingAfterADeadLetterIsNoLostLease(t *testing.T) {
	t.Parallel()
	r := &receipt{leaseEnd: time.Now().Add(-time.Millisecond)}
	sctx, cancel := r.settleCtx(context.Background())
	defer cancel()
	<-sctx.Done()

	dead := fmt.Errorf("jetstream: release task t on its last delivery (max_deliver 1): its copy was not stored (full): %w", queue.ErrDeadLettered)
	err := leaseCut(sctx, dead)
	require.ErrorIs(t, err, queue.ErrDeadLettered)
	require.NotErrorIs(t, err, queue.ErrLeaseLost, "settled as a dead letter: no lease to lose")

	failed := errors.New("jetstream: dead-letter task t: publish: context deadline exceeded")
	require.ErrorIs(t, leaseCut(sctx, failed), queue.ErrLeaseLost, "a settlement the lease's end cut short still says so")
}
