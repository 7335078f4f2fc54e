package control

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHistoryRatesOverTheWindow: the history turns the counters sampled
// every interval into per-second rates between samples, oldest first,
// summed over the queues, and keeps only the window (a ring).
func TestHistoryRatesOverTheWindow(t *testing.T) {
	t.Parallel()
	h := newHistory(30*time.Second, 10*time.Second) // 4 samples: 3 points
	require.Empty(t, h.points())
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	for i := range 6 {
		n := int64(i)
		h.add(t0.Add(time.Duration(i)*10*time.Second), map[string]counts{
			"a": {enqueued: 100 * n, succeeded: 10 * n * n, failed: n},
			"b": {enqueued: 100 * n},
		})
	}
	ps := h.points()
	require.Len(t, ps, 3, "the ring keeps the window: 4 samples")
	require.Equal(t, t0.Add(30*time.Second), ps[0].At)
	require.Equal(t, t0.Add(50*time.Second), ps[2].At)
	for _, p := range ps {
		require.InDelta(t, 20.0, p.EnqueuedPerSec, 1e-9, "200 tasks in 10 s, both queues")
		require.InDelta(t, 0.1, p.FailedPerSec, 1e-9)
	}
	require.InDelta(t, 5.0, ps[0].SucceededPerSec, 1e-9, "(90-40)/10")
	require.InDelta(t, 9.0, ps[2].SucceededPerSec, 1e-9, "(250-160)/10")
}
