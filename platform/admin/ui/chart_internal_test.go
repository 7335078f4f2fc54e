package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
)

// TestChartScalesTheWindow: the newest point is at the right edge, one
// 7.5 minutes older in the middle; the top of the axis is the highest
// rate rounded up to 1, 2 or 5 times a power of ten.
func TestChartScalesTheWindow(t *testing.T) {
	t.Parallel()
	require.True(t, newChart(control.Throughput{}).Empty)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tp := control.Throughput{Every: "5s", Points: []control.ThroughputPoint{
		{At: now.Add(-control.ThroughputWindow / 2), EnqueuedPerSec: 30, SucceededPerSec: 15, FailedPerSec: 0},
		{At: now, EnqueuedPerSec: 0, SucceededPerSec: 40, FailedPerSec: 4},
	}}
	c := newChart(tp)
	require.False(t, c.Empty)
	require.Equal(t, "50", c.Max)
	require.Len(t, c.Series, 3)
	require.Equal(t, "300.0,64.0 600.0,160.0", c.Series[0].Points, "enqueued: 30 of 50 at the middle, 0 at now")
	require.Equal(t, "300.0,112.0 600.0,32.0", c.Series[1].Points)
	require.Equal(t, "4.00", c.Series[2].Last)
	for in, want := range map[float64]float64{0: 1, 0.3: 1, 1.5: 2, 2: 2, 3: 5, 7: 10, 11: 20, 480: 500, 501: 1000} {
		require.Equal(t, want, nice(in), "nice(%v)", in)
	}
	require.False(t, strings.Contains(c.Series[0].Points, "NaN"))
}
