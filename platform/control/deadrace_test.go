package control_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// meddling is a backend whose Redrive first runs before (another
// operator's call landing between the API's selection and its action),
// and whose Redrive and QueryDead fail with err from the moment fail is
// set (the backend's connection lost while the action runs).
type meddling struct {
	queue.Backend
	mu     sync.Mutex
	before func()
	after  func() // runs once, after the backend's Redrive, before it is answered
	fail   error  // Redrive: done, but answered with this; QueryDead: refused
	failed bool
}

func (m *meddling) Redrive(ctx context.Context, q string, ids ...string) (int, error) {
	m.mu.Lock()
	before, after, fail := m.before, m.after, m.fail
	m.before, m.after = nil, nil
	m.mu.Unlock()
	if before != nil {
		before()
	}
	n, err := m.Backend.Redrive(ctx, q, ids...)
	if after != nil {
		after()
	}
	if fail != nil && err == nil {
		m.mu.Lock()
		m.failed = true
		m.mu.Unlock()
		return 0, fail // done, and the answer lost
	}
	return n, err
}

func (m *meddling) QueryDead(ctx context.Context, q string, dq queue.DeadQuery) (queue.DeadPage, error) {
	m.mu.Lock()
	failed := m.failed
	m.mu.Unlock()
	if failed {
		return queue.DeadPage{}, m.fail
	}
	return m.Backend.QueryDead(ctx, q, dq)
}

// auditOf returns the audit log's entries of action.
func (e *env) auditOf(action string) []map[string]any {
	var out []map[string]any
	for _, l := range e.logs.FilterMessage("audit").All() {
		if m := l.ContextMap(); m["action"] == action {
			out = append(out, m)
		}
	}
	return out
}

// A dead letter another call purges between the API's selection and its
// re-drive is neither re-driven by the call nor left a dead letter: the
// answer and the audit say so: "partial" (one of two done), neither "ok"
// nor "failed" (as if nothing was done).
func TestRedriveOfADeadLetterPurgedMeanwhile(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	m := &meddling{Backend: b}
	e := newEnvAPI(t, b, m, store, worker.PoolConfig{Concurrency: 2})
	e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
	ids := e.enqueue(2, "{}")
	eventually(t, "two dead letters", func() bool { return e.deadCount() == 2 })
	e.setHandler(func(context.Context, *task.Task) error { return nil })
	m.before = func() {
		n, err := b.Purge(context.Background(), testQueue, ids[1])
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	var raw map[string]any
	e.mustCall(http.StatusOK, "POST", deadPath+"/redrive", control.DeadAction{IDs: ids}, &raw)
	require.EqualValues(t, 2, raw["matched"], "%v", raw)
	require.EqualValues(t, 1, raw["done"], "%v", raw)
	require.EqualValues(t, 1, raw["gone"], "the purged one is reported: %v", raw)
	require.Empty(t, raw["failed"], "%v", raw)

	got := e.auditOf("dlq.redrive")
	require.Len(t, got, 1)
	require.Equal(t, "partial", got[0]["result"], "one of the two selected was re-driven by the call, one not: %v", got[0])
	require.Contains(t, got[0]["error"], "another call")
}

// A re-drive whose backend fails (the answer lost, so that it cannot
// tell what it did) and whose check of what is still dead fails too
// answers an error that says how far it got, and its audit entry is the
// re-drive's, with its counts, not a bare "failed" of the route.
func TestRedriveThatFailsMidwayIsAuditedWithItsCounts(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	m := &meddling{Backend: b}
	e := newEnvAPI(t, b, m, store, worker.PoolConfig{Concurrency: 2})
	e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
	e.enqueue(2, "{}")
	eventually(t, "two dead letters", func() bool { return e.deadCount() == 2 })
	e.setHandler(func(context.Context, *task.Task) error { return nil })
	m.fail = errors.New("connection lost")
	code, body := e.call("POST", deadPath+"/redrive", control.DeadAction{All: true}, nil)
	require.Equal(t, http.StatusInternalServerError, code, body)
	require.Contains(t, body, "connection lost")
	require.Contains(t, body, `"unknown": 2`, "the answer says how many it cannot account for: %s", body)

	got := e.auditOf("dlq.redrive")
	require.Len(t, got, 1, "the re-drive's own entry, with its counts")
	require.Equal(t, "failed", got[0]["result"])
	params, _ := got[0]["params"].(map[string]any)
	require.EqualValues(t, 2, params["matched"], "%v", got[0])
	require.EqualValues(t, 0, params["done"], "%v", got[0])
	require.EqualValues(t, 2, params["unknown"], "%v", got[0])
	require.Contains(t, got[0]["error"], "connection lost")
}
