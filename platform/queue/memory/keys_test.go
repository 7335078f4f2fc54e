package memory

import (
	"testing"

	"github.com/stretchr/testify/require"
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
