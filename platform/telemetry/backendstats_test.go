package telemetry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/telemetry"
)

// statsBackend lists queues and fails the stats of one.
type statsBackend struct {
	queues []string
	broken string
}

func (b statsBackend) Queues(context.Context) ([]string, error) { return b.queues, nil }

func (b statsBackend) Stats(_ context.Context, q string) (queue.Stats, error) {
	if q == b.broken {
		return queue.Stats{}, errors.New("stream info timed out")
	}
	return queue.Stats{Ready: int64(len(q))}, nil
}

// TestBackendStatsGoOnPastAFailedQueue: a queue whose stats the backend
// cannot read (a JetStream stream info that timed out) leaves its own
// gauges out of the collection, not those of the queues listed after it,
// which went missing from the scrape as well.
func TestBackendStatsGoOnPastAFailedQueue(t *testing.T) {
	t.Parallel()
	s := telemetry.BackendStats(statsBackend{queues: []string{"a", "bb", "ccc"}, broken: "bb"})
	stats, err := s.QueueStats(context.Background())
	require.ErrorContains(t, err, `stats of queue "bb"`)
	require.Equal(t, []queue.Stats{{Queue: "a", Ready: 1}, {Queue: "ccc", Ready: 3}}, stats)
}
