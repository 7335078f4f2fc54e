package control_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestRedriveOfATaskThatFailsAgainIsDone: a re-drive checked after a
// chunk the backend did not do whole (another call purged one of its dead
// letters meanwhile) counts a task it re-drove, which ran and was
// dead-lettered again before the check, as done, not as a dead letter it
// failed to re-drive: the check tells the dead letter it selected from
// the new one of the same task by its time. It reported that task
// "failed" with the backend's reason and the purged one not at all
// (gone 0), and ctl exited 1 for a task that was re-driven.
func TestRedriveOfATaskThatFailsAgainIsDone(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			m := &meddling{Backend: b}
			e := newEnvAPI(t, b, m, store, worker.PoolConfig{Concurrency: 2})
			e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("still broken")) })
			ids := e.enqueue(2, "{}")
			eventually(t, "two dead letters", func() bool { return e.deadCount() == 2 })
			before, err := b.QueryDead(context.Background(), testQueue, queue.DeadQuery{IDs: ids[:1]})
			require.NoError(t, err)
			require.Len(t, before.Items, 1)
			ran := e.ran.Load()
			m.before = func() { // another call purges the second meanwhile
				n, err := b.Purge(context.Background(), testQueue, ids[1])
				require.NoError(t, err)
				require.Equal(t, 1, n)
			}
			m.after = func() { // the first runs again and is dead again before the API checks
				eventually(t, "the re-driven task dead again", func() bool {
					page, err := b.QueryDead(context.Background(), testQueue, queue.DeadQuery{IDs: ids[:1]})
					return err == nil && len(page.Items) == 1 && !page.Items[0].At.Equal(before.Items[0].At) && e.ran.Load() > ran
				})
			}
			var res control.DeadResult
			e.mustCall(http.StatusOK, "POST", deadPath+"/redrive", control.DeadAction{IDs: ids}, &res)
			require.Equal(t, 2, res.Matched, "%+v", res)
			require.Equal(t, 1, res.Done, "%+v", res)
			require.Empty(t, res.Failed, "the re-driven task is not a failure to re-drive it: %+v", res)
			require.Equal(t, 1, res.Gone, "the purged one: %+v", res)
		})
	}
}
