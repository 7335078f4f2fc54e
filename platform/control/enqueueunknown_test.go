package control_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// unsure is a backend whose Enqueue, while err is set, answers err
// after storing the tasks or not (store): a publish whose ack was lost.
type unsure struct {
	queue.Backend
	mu    sync.Mutex
	err   error
	store bool
}

func (u *unsure) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	u.mu.Lock()
	err, store := u.err, u.store
	u.mu.Unlock()
	if err == nil {
		return u.Backend.Enqueue(ctx, tasks...)
	}
	if store {
		if serr := u.Backend.Enqueue(ctx, tasks...); serr != nil {
			return serr
		}
	}
	return err
}

// An enqueue whose outcome the backend cannot tell (its publish may have
// been stored) is not reported failed: the answer is 504 saying the
// outcome is unknown, naming the task's id and key and that enqueueing
// again with the same key is safe; the audit records "unknown". The
// retry it advises stores no second task.
func TestEnqueueOfUnknownOutcomeIsReportedUnknown(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	u := &unsure{Backend: b, err: fmt.Errorf("publish ack: timeout: %w", queue.ErrOutcomeUnknown), store: true}
	e := newEnv(t, u, store, worker.PoolConfig{Concurrency: 1})
	ran := make(chan string, 4)
	hold := make(chan struct{})
	e.setHandler(func(ctx context.Context, tk *task.Task) error {
		ran <- tk.ID
		select { // the key stays held while the task runs
		case <-hold:
		case <-ctx.Done():
		}
		return nil
	})
	defer close(hold)
	tasks := control.Prefix + "/tasks"

	code, body := e.call("POST", tasks, map[string]any{"kind": testKind, "key": "k-unsure", "payload": 1}, nil)
	require.Equal(t, http.StatusGatewayTimeout, code, body)
	require.Contains(t, body, "unknown")
	require.Contains(t, body, "k-unsure")
	require.Contains(t, body, "same key")
	audit := e.auditOf("task.enqueue")
	require.Len(t, audit, 1)
	require.Equal(t, "unknown", audit[0]["result"])
	params := audit[0]["params"].(map[string]any)
	id, _ := params["id"].(string)
	require.NotEmpty(t, id, "the audit names the task id")
	require.Contains(t, body, id, "the answer names the task id")
	require.Equal(t, "k-unsure", params["key"])

	// It was stored: the advised retry with the same key (while the task
	// runs) stores nothing more (409: the key is held).
	first := <-ran
	require.Equal(t, id, first)
	u.mu.Lock()
	u.err = nil
	u.mu.Unlock()
	code, body = e.call("POST", tasks, map[string]any{"kind": testKind, "key": "k-unsure", "payload": 1}, nil)
	require.Equal(t, http.StatusConflict, code, body)

	// A refusal (not an unknown outcome) is still "failed" (500).
	u.mu.Lock()
	u.err, u.store = errors.New("refused"), false
	u.mu.Unlock()
	code, body = e.call("POST", tasks, map[string]any{"kind": testKind, "key": "k-refused"}, nil)
	require.Equal(t, http.StatusInternalServerError, code, body)
	audit = e.auditOf("task.enqueue")
	require.Len(t, audit, 3)
	require.Equal(t, "failed", audit[2]["result"])
	require.Len(t, ran, 0, "no second task ran")
}
