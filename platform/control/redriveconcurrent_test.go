package control_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Two operators re-drive the same dead letters at once: every task runs
// once more, and the two answers (and audit entries) together count each
// re-driven once: what one call did, the other reports gone, not done.
// On JetStream both calls counted the dead letters whose copy the other
// had stored (a duplicate the server dropped).
func TestConcurrentRedrivesCountEachDeadLetterOnce(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
			e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
			const n = 40
			ids := e.enqueue(n, "{}")
			eventually(t, "the dead letters", func() bool { return e.deadCount() == n })
			// Paused: the re-driven tasks wait, so that each dead letter
			// is re-driven from the dead letters only (not deleted by
			// its copy's delivery meanwhile).
			e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/pause", nil, nil)
			var mu sync.Mutex
			ran := map[string]int{}
			e.setHandler(func(_ context.Context, tk *task.Task) error {
				mu.Lock()
				ran[tk.ID]++
				mu.Unlock()
				return nil
			})

			var res [2]control.DeadResult
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range res {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					e.mustCall(http.StatusOK, "POST", deadPath+"/redrive", control.DeadAction{IDs: ids}, &res[i])
				}()
			}
			close(start)
			wg.Wait()
			done := res[0].Done + res[1].Done
			require.Equal(t, n, done, "each re-driven once, counted once: %+v", res)
			for _, r := range res {
				// Done, gone, or not a dead letter by the time this call
				// selected (the other call re-drove it first).
				require.Equal(t, n, r.Done+r.Gone+len(r.Failed), "every id accounted for: %+v", r)
			}
			audited := 0
			for _, a := range e.auditOf("dlq.redrive") {
				params, _ := a["params"].(map[string]any)
				require.Contains(t, params, "done", "%v", a)
				audited += toInt(t, params["done"])
			}
			require.Equal(t, n, audited, "the audit counts each once")

			e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/resume", nil, nil)
			eventually(t, "every re-driven task ran", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(ran) == n
			})
			require.Equal(t, 0, e.deadCount())
			mu.Lock()
			defer mu.Unlock()
			for id, k := range ran {
				require.Equal(t, 1, k, "task %s ran once", id)
			}
		})
	}
}

// toInt reads an audit parameter's number, whatever type the log kept.
func toInt(t *testing.T, v any) int {
	t.Helper()
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	}
	t.Fatalf("not a number: %T %v", v, v)
	return 0
}
