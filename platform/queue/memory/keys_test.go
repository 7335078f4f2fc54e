package memory

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestKeyIndexCollisions forces two keys onto one hash: both are kept
// apart, found and forgotten independently.
func TestKeyIndexCollisions(t *testing.T) {
	t.Parallel()
	x := newKeyIndex()
	const h = 42
	x.set("a", h, keyRef{until: 1})
	x.set("b", h, keyRef{until: 2})
	ra, ok := x.get("a", h)
	require.True(t, ok)
	require.Equal(t, int64(1), ra.until)
	rb, ok := x.get("b", h)
	require.True(t, ok)
	require.Equal(t, int64(2), rb.until)
	_, ok = x.get("c", h)
	require.False(t, ok)

	x.set("b", h, keyRef{until: 3})
	rb, _ = x.get("b", h)
	require.Equal(t, int64(3), rb.until, "update in the spill")

	x.del("a", h)
	_, ok = x.get("a", h)
	require.False(t, ok)
	rb, ok = x.get("b", h)
	require.True(t, ok, "the spilled key survives the primary's removal")
	require.Equal(t, int64(3), rb.until)
	x.del("b", h)
	_, ok = x.get("b", h)
	require.False(t, ok)

	require.Equal(t, x.hash("order-1"), x.hash("order-1"))
	require.NotEqual(t, x.hash("order-1"), x.hash("order-2"))
}

// TestKeyIndexReplaceAndForget: a stored key is replaced and forgotten
// where set put it, in the map by hash or in the spill, without touching
// the other key of its hash.
func TestKeyIndexReplaceAndForget(t *testing.T) {
	t.Parallel()
	x := newKeyIndex()
	const h = 7
	require.False(t, x.set("a", h, keyRef{until: 1}))
	require.True(t, x.set("b", h, keyRef{until: 2}), "b's hash is taken by a")

	x.replace("b", h, true, keyRef{until: 20})
	x.replace("a", h, false, keyRef{until: 10})
	ra, _ := x.get("a", h)
	rb, _ := x.get("b", h)
	require.Equal(t, int64(10), ra.until)
	require.Equal(t, int64(20), rb.until)

	x.forget("a", h, false)
	_, ok := x.get("a", h)
	require.False(t, ok)
	rb, ok = x.get("b", h)
	require.True(t, ok)
	require.Equal(t, int64(20), rb.until)
	x.forget("b", h, true)
	_, ok = x.get("b", h)
	require.False(t, ok)
	require.Empty(t, x.live)
	require.Empty(t, x.done)
	require.Empty(t, x.spill)
}

// TestKeyIndexLiveAndDone: a stored task's key maps to its entry (live);
// released with a window it moves to done, and enqueued again it moves
// back, never in both maps at once; another key of its hash goes to the
// spill meanwhile.
func TestKeyIndexLiveAndDone(t *testing.T) {
	t.Parallel()
	x := newKeyIndex()
	const h = 9
	e := &entry{t: &task.Task{Key: "a"}}
	require.False(t, x.set("a", h, keyRef{e: e}))
	r, ok := x.get("a", h)
	require.True(t, ok)
	require.Same(t, e, r.e)
	require.Equal(t, "a", r.key)
	require.True(t, x.set("b", h, keyRef{until: 5}), "a holds the hash")

	x.replace("a", h, false, keyRef{until: 10, outcome: task.Succeeded})
	require.Empty(t, x.live)
	r, ok = x.get("a", h)
	require.True(t, ok)
	require.Nil(t, r.e)
	require.Equal(t, int64(10), r.until)
	require.Equal(t, task.Succeeded, r.outcome)

	e2 := &entry{t: &task.Task{Key: "a"}}
	require.False(t, x.set("a", h, keyRef{e: e2}), "its own hash")
	require.Empty(t, x.done)
	r, _ = x.get("a", h)
	require.Same(t, e2, r.e)
	rb, ok := x.get("b", h)
	require.True(t, ok)
	require.Equal(t, int64(5), rb.until)

	x.forget("a", h, false)
	_, ok = x.get("a", h)
	require.False(t, ok)
	require.Empty(t, x.live)
}
