package plbatest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// deadCounter is an observer that counts the backend's own dead letters.
type deadCounter struct {
	task.NopObserver
	reasons []string
}

func (d *deadCounter) DeadLettered(_ context.Context, _ *task.Task, reason string) {
	d.reasons = append(d.reasons, reason)
}

// TestRecorderPassesOnDeadLetters: the kit's recorder, wrapped around the
// platform's observer, passes on the dead letters the backend made on its
// own (task.DeadObserver); hiding the interface would keep them from the
// platform's metrics in every kit.
func TestRecorderPassesOnDeadLetters(t *testing.T) {
	inner := &deadCounter{}
	r := newRecorder()
	r.inner = inner
	var obs task.Observer = r
	d, ok := obs.(task.DeadObserver)
	require.True(t, ok, "the recorder is a task.DeadObserver")
	d.DeadLettered(context.Background(), &task.Task{Kind: "k", Queue: "q"}, "lease expired 1 times")
	require.Equal(t, []string{"lease expired 1 times"}, inner.reasons)
	newRecorder().DeadLettered(context.Background(), &task.Task{Kind: "k"}, "x") // an inner observer without it: nothing
}
