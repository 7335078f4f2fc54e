package jetstream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestTwoDeadLettersAWindowApartListOne: two deliveries of one message
// at once (claim.go) both dead-letter the task, the second more than the
// dead-letter stream's duplicate window after the first (a task that ran
// long), so the server stores its copy beside the first's. The second's
// claim is lost, and its copy is deleted: the task has one dead letter,
// the winner's. Before, the second's copy was kept because the winner
// dead-lettered the task too: two dead letters were listed for one task
// (each re-drive of them running it again), one of them never told.
func TestTwoDeadLettersAWindowApartListOne(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const window = 2 * time.Second
	b := openTestBackend(t, Config{AckWait: time.Second, AckSync: true, Prefetch: 1, MaxPrefetch: 1,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	// Dead-letter copies de-duplicated for 2 seconds (the claims for the
	// default 2 minutes).
	cfg := b.dead.CachedInfo().Config
	cfg.Duplicates = window
	_, err := b.js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	const qn = "dead-twice"
	first, second := twoAtOnce(t, b, qn, "order-4")
	require.NoError(t, b.DeadLetter(ctx, second, "refused first"))
	time.Sleep(2*window + time.Second) // past the copy's duplicate window (the server forgets ids on a timer of that period)
	revive(first)
	err = b.DeadLetter(ctx, first, "refused again")
	require.ErrorIs(t, err, queue.ErrLeaseLost, "the second dead letter did not happen")
	require.Equal(t, task.DeadLettered, markerOf(t, b, qn, "order-4"))
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1, "one dead letter for the task")
	require.Equal(t, "refused first", dead[0].Reason, "the winner's")
}

// TestTwoDeadLettersAtOnceKeepTheirCopy: two deliveries of one message
// at once both dead-letter the task within the dead-letter stream's
// duplicate window: they store one copy, and the loser of the claim
// leaves it to the winner.
func TestTwoDeadLettersAtOnceKeepTheirCopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, AckSync: true, Prefetch: 1, MaxPrefetch: 1,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "dead-once"
	first, second := twoAtOnce(t, b, qn, "order-5")
	require.NoError(t, b.DeadLetter(ctx, second, "refused first"))
	err := b.DeadLetter(ctx, first, "refused again")
	require.ErrorIs(t, err, queue.ErrLeaseLost, "the second dead letter did not happen")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1, "the winner's dead letter stays")
	require.Equal(t, "refused first", dead[0].Reason)
}
