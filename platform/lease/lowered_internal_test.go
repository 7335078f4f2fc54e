package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoweringMark(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	_, ok, err := loweringIn(map[string]string{"other": "x"})
	require.NoError(t, err)
	require.False(t, ok, "no mark")

	meta := map[string]string{}
	lowering{from: 6 * time.Second}.write(meta)
	lw, ok, err := loweringIn(meta)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 6*time.Second, lw.left(now), "no time yet: the old TTL from the server's time read with it")

	lowering{from: 6 * time.Second, by: now.Add(-4 * time.Second)}.write(meta)
	lw, _, err = loweringIn(meta)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, lw.left(now))
	require.Zero(t, lw.left(now.Add(time.Hour)), "over")
	require.Equal(t, 6*time.Second, lw.left(now.Add(-time.Hour)), "at most the old TTL")

	for _, bad := range []map[string]string{
		{metaLoweredFrom: "soon"},
		{metaLoweredFrom: "0s"},
		{metaLoweredFrom: "6s", metaLoweredBy: "yesterday"},
	} {
		_, ok, err := loweringIn(bad)
		require.True(t, ok)
		require.Error(t, err, "%v", bad)
	}
}

func TestCountOn(t *testing.T) {
	require.Equal(t, time.Second, countOn(3*time.Second, time.Second), "the bucket's, shorter")
	require.Equal(t, 3*time.Second, countOn(3*time.Second, 5*time.Second), "the host's, shorter")
	require.Equal(t, 3*time.Second, countOn(3*time.Second, 0), "a bucket without a TTL")
}
