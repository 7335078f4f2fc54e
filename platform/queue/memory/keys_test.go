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
	x.set("a", false, h, keyRef{until: 1})
	x.set("b", false, h, keyRef{until: 2})
	ra, ok := x.get("a", false, h)
	require.True(t, ok)
	require.Equal(t, int64(1), ra.until)
	rb, ok := x.get("b", false, h)
	require.True(t, ok)
	require.Equal(t, int64(2), rb.until)
	_, ok = x.get("c", false, h)
	require.False(t, ok)

	x.set("b", false, h, keyRef{until: 3})
	rb, _ = x.get("b", false, h)
	require.Equal(t, int64(3), rb.until, "update in the spill")

	x.del("a", false, h)
	_, ok = x.get("a", false, h)
	require.False(t, ok)
	rb, ok = x.get("b", false, h)
	require.True(t, ok, "the spilled key survives the primary's removal")
	require.Equal(t, int64(3), rb.until)
	x.del("b", false, h)
	_, ok = x.get("b", false, h)
	require.False(t, ok)

	require.Equal(t, x.hash("order-1", false), x.hash("order-1", false))
	require.NotEqual(t, x.hash("order-1", false), x.hash("order-2", false))
}

// TestKeyIndexReplaceAndForget: a stored key is replaced and forgotten
// where set put it, in the map by hash or in the spill, without touching
// the other key of its hash.
func TestKeyIndexReplaceAndForget(t *testing.T) {
	t.Parallel()
	x := newKeyIndex()
	const h = 7
	require.False(t, x.set("a", false, h, keyRef{until: 1}))
	require.True(t, x.set("b", false, h, keyRef{until: 2}), "b's hash is taken by a")

	x.replace("b", false, h, true, keyRef{until: 20})
	x.replace("a", false, h, false, keyRef{until: 10})
	ra, _ := x.get("a", false, h)
	rb, _ := x.get("b", false, h)
	require.Equal(t, int64(10), ra.until)
	require.Equal(t, int64(20), rb.until)

	x.forget("a", false, h, false)
	_, ok := x.get("a", false, h)
	require.False(t, ok)
	rb, ok = x.get("b", false, h)
	require.True(t, ok)
	require.Equal(t, int64(20), rb.until)
	x.forget("b", false, h, true)
	_, ok = x.get("b", false, h)
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
	require.False(t, x.set("a", false, h, keyRef{e: e}))
	r, ok := x.get("a", false, h)
	require.True(t, ok)
	require.Same(t, e, r.e)
	require.Equal(t, "a", r.key)
	require.True(t, x.set("b", false, h, keyRef{until: 5}), "a holds the hash")

	x.replace("a", false, h, false, keyRef{until: 10, outcome: task.Succeeded})
	require.Empty(t, x.live)
	r, ok = x.get("a", false, h)
	require.True(t, ok)
	require.Nil(t, r.e)
	require.Equal(t, int64(10), r.until)
	require.Equal(t, task.Succeeded, r.outcome)

	e2 := &entry{t: &task.Task{Key: "a"}}
	require.False(t, x.set("a", false, h, keyRef{e: e2}), "its own hash")
	require.Empty(t, x.done)
	r, _ = x.get("a", false, h)
	require.Same(t, e2, r.e)
	rb, ok := x.get("b", false, h)
	require.True(t, ok)
	require.Equal(t, int64(5), rb.until)

	x.forget("a", false, h, false)
	_, ok = x.get("a", false, h)
	require.False(t, ok)
	require.Empty(t, x.live)
}

// TestKeyIndexSpaces: a generated key and a producer's key written the
// same are two keys: they hash apart, and when both hashes are taken by
// other keys (the spill) they are kept, found and forgotten apart.
func TestKeyIndexSpaces(t *testing.T) {
	t.Parallel()
	x := newKeyIndex()
	hp, hm := x.hash("a", false), x.hash("a", true)
	require.NotEqual(t, hp, hm)
	require.False(t, x.set("a", false, hp, keyRef{until: 1}))
	_, ok := x.get("a", true, hm)
	require.False(t, ok, "the producer's key is not the generated one")
	require.False(t, x.set("a", true, hm, keyRef{until: 2}))
	for _, c := range []struct {
		made  bool
		h     uint64
		until int64
	}{{false, hp, 1}, {true, hm, 2}} {
		r, ok := x.get("a", c.made, c.h)
		require.True(t, ok)
		require.Equal(t, c.until, r.until)
	}
	x.del("a", false, hp)
	x.del("a", true, hm)
	require.Empty(t, x.done)

	// Both hashes taken by other keys: both go to the spill.
	require.False(t, x.set("x", false, hp, keyRef{until: 10}))
	require.False(t, x.set("y", false, hm, keyRef{until: 20}))
	require.True(t, x.set("a", false, hp, keyRef{until: 1}))
	require.True(t, x.set("a", true, hm, keyRef{until: 2}))
	r, ok := x.get("a", false, hp)
	require.True(t, ok)
	require.Equal(t, int64(1), r.until)
	r, ok = x.get("a", true, hm)
	require.True(t, ok)
	require.Equal(t, int64(2), r.until)
	x.forget("a", true, hm, true)
	_, ok = x.get("a", true, hm)
	require.False(t, ok)
	r, ok = x.get("a", false, hp)
	require.True(t, ok, "the producer's key outlives the generated one")
	require.Equal(t, int64(1), r.until)
	x.del("a", false, hp)
	require.Empty(t, x.spill)
}
