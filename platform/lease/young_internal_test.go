package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestYoungLeft(t *testing.T) {
	const ttl = 6 * time.Second
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, ttl, youngLeft(now, now, ttl), "created now")
	require.Equal(t, 2*time.Second, youngLeft(now.Add(-4*time.Second), now, ttl))
	require.Zero(t, youngLeft(now.Add(-ttl), now, ttl), "the TTL old")
	require.Zero(t, youngLeft(now.Add(-time.Hour), now, ttl))
	require.Equal(t, ttl, youngLeft(now.Add(time.Second), now, ttl), "created after the server's time: at most the TTL")
}
