package control_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// sharedIDDeadLetters makes two dead letters whose tasks share the id
// "shared" (a producer may give one id to two tasks of different keys,
// task.Task.ID), with the reasons "first" and "second", and one more
// ("other"), on bk; the handler succeeds from then on.
func sharedIDDeadLetters(t *testing.T, bk backendKind) *env {
	t.Helper()
	b, store, _ := bk.open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	e.setHandler(func(_ context.Context, tk *task.Task) error { return task.Permanent(errors.New(string(tk.Payload))) })
	for _, tk := range []*task.Task{
		{ID: "shared", Key: "k1", Kind: testKind, Payload: []byte("first")},
		{ID: "shared", Key: "k2", Kind: testKind, Payload: []byte("second")},
		{ID: "other", Kind: testKind, Payload: []byte("third")},
	} {
		require.NoError(t, e.rt.Producer().Enqueue(context.Background(), tk))
	}
	eventually(t, "three dead letters", func() bool { return e.deadCount() == 3 })
	e.setHandler(func(context.Context, *task.Task) error { return nil })
	return e
}

// TestActionByASharedIDCountsEachDeadLetter: a re-drive or purge by ids
// of two dead letters whose tasks share an id counts both as matched and
// both as done, each once. The id was counted once as matched while the
// backend did both: "2 of 1 done".
func TestActionByASharedIDCountsEachDeadLetter(t *testing.T) {
	for _, bk := range backends() {
		for _, action := range []string{"redrive", "purge"} {
			t.Run(bk.name+"/"+action, func(t *testing.T) {
				t.Parallel()
				e := sharedIDDeadLetters(t, bk)
				var dry control.DeadResult
				e.mustCall(http.StatusOK, "POST", deadPath+"/"+action, control.DeadAction{IDs: []string{"shared", "shared"}, DryRun: true}, &dry)
				require.Equal(t, 2, dry.Matched, "%+v", dry)
				var res control.DeadResult
				e.mustCall(http.StatusOK, "POST", deadPath+"/"+action, control.DeadAction{IDs: []string{"shared"}}, &res)
				require.Equal(t, 2, res.Matched, "%+v", res)
				require.Equal(t, 2, res.Done, "%+v", res)
				require.Empty(t, res.Failed, "%+v", res)
				require.Zero(t, res.Gone, "%+v", res)
				eventually(t, "the other dead letter left alone", func() bool { return e.deadCount() == 1 })
			})
		}
	}
}

// TestFilterDoesNotActOnADeadLetterItLeftOut: a re-drive or purge by a
// filter that selects one of two dead letters sharing a task id does
// not do the other, which the backend, acting by id, would do with it:
// the selected one is reported failed, saying why, and both stay. The
// backend did both, reported "2 of 1 done", the one left out unselected.
func TestFilterDoesNotActOnADeadLetterItLeftOut(t *testing.T) {
	for _, bk := range backends() {
		for _, action := range []string{"redrive", "purge"} {
			t.Run(bk.name+"/"+action, func(t *testing.T) {
				t.Parallel()
				e := sharedIDDeadLetters(t, bk)
				for _, dry := range []bool{true, false} {
					var res control.DeadResult
					e.mustCall(http.StatusOK, "POST", deadPath+"/"+action, control.DeadAction{Filter: control.DeadFilter{Reason: "first"}, DryRun: dry}, &res)
					require.Equal(t, 1, res.Matched, "%+v", res)
					require.Zero(t, res.Done, "%+v", res)
					require.Len(t, res.Failed, 1, "%+v", res)
					require.Equal(t, "shared", res.Failed[0].ID)
					require.Contains(t, res.Failed[0].Error, "shares its id", "%+v", res)
				}
				require.Equal(t, 3, e.deadCount())
				// A filter selecting both of them does both.
				var res control.DeadResult
				e.mustCall(http.StatusOK, "POST", deadPath+"/"+action, control.DeadAction{Filter: control.DeadFilter{Kind: testKind}}, &res)
				require.Equal(t, 3, res.Matched, "%+v", res)
				require.Equal(t, 3, res.Done, "%+v", res)
				require.Empty(t, res.Failed, "%+v", res)
			})
		}
	}
}
