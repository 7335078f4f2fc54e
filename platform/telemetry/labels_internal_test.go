package telemetry

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestLabelCacheIsBoundedOverQueues: past maxLabelSets the cache stops
// growing also when what varies is the queue, not the kind (a producer
// enqueuing on queue names taken from outside input): every new queue
// used to get a set of its own with kind "_other", so memory and the
// metrics' cardinality grew with each new queue name.
func TestLabelCacheIsBoundedOverQueues(t *testing.T) {
	var c labelCache
	for i := range maxLabelSets {
		c.get("q", "k"+strconv.Itoa(i), "ok")
	}
	const extra = 2 * maxOtherQueues
	for i := range extra {
		ls := c.get("queue-"+strconv.Itoa(i), "garbage", task.Outcome("ok"))
		require.Equal(t, otherKind, ls.key.kind)
	}
	require.LessOrEqual(t, len(*c.m.Load()), maxLabelSets+maxOtherQueues+1)
	// Past both bounds the set is the catch-all one.
	ls := c.get("yet-another-queue", "garbage", "ok")
	require.Equal(t, labelKey{queue: otherKind, kind: otherKind, outcome: "ok"}, ls.key)
	// A queue that got its "_other" set before the bound keeps it.
	require.Equal(t, "queue-0", c.get("queue-0", "more-garbage", "ok").key.queue)
	// Sets made before the bound are found as they were.
	require.Equal(t, labelKey{queue: "q", kind: "k7", outcome: "ok"}, c.get("q", "k7", "ok").key)
}
