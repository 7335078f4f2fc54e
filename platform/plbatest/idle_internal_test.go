package plbatest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/task"
)

// A task on a queue no pool serves never settles: RunUntilIdle gives up
// after its timeout, naming the queue and what it holds.
func TestNotIdleNamesWhatIsLeft(t *testing.T) {
	t.Parallel()
	k := Start(t, fx.Options())
	k.Enqueue(&task.Task{Kind: "k", Queue: "nowhere"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := k.runUntilIdle(ctx)
	require.ErrorContains(t, err, `queue "nowhere": 1 ready, 0 in flight, 0 delayed (is a pool serving it?)`)
}
