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

// TestEveryActionIsAudited calls every state-changing route once through
// the admin server and finds each in its audit (the admin.audit log), with
// its target and result.
func TestEveryActionIsAudited(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
	e.enqueue(1, "{}")
	eventually(t, "a dead letter", func() bool { return e.deadCount() == 1 })
	p := control.Prefix
	e.mustCall(http.StatusOK, "POST", p+"/pools/"+testQueue+"/pause", nil, nil)
	e.mustCall(http.StatusOK, "POST", p+"/pools/"+testQueue+"/resume", nil, nil)
	e.mustCall(http.StatusOK, "POST", p+"/pools/"+testQueue+"/resize", control.Resize{Size: 2}, nil)
	e.mustCall(http.StatusOK, "DELETE", p+"/pools/"+testQueue+"/override", nil, nil)
	e.mustCall(http.StatusOK, "POST", p+"/queues/"+testQueue+"/dead/redrive", control.DeadAction{All: true, DryRun: true}, nil)
	e.mustCall(http.StatusOK, "POST", p+"/queues/"+testQueue+"/dead/purge", control.DeadAction{All: true}, nil)
	e.mustCall(http.StatusOK, "POST", p+"/queues/"+testQueue+"/dead/redrive", control.DeadAction{IDs: []string{"gone"}}, nil)
	e.mustCall(http.StatusCreated, "POST", p+"/tasks", map[string]any{"kind": testKind, "payload": 1}, nil)
	e.mustCall(http.StatusNotFound, "POST", p+"/sources/none/pause", nil, nil)
	e.mustCall(http.StatusNotFound, "POST", p+"/sources/none/resume", nil, nil)

	type rec struct{ action, target, result string }
	var got []rec
	for _, l := range e.logs.FilterMessage("audit").All() {
		m := l.ContextMap()
		got = append(got, rec{m["action"].(string), str(m["target"]), m["result"].(string)})
	}
	require.Equal(t, []rec{
		{"pool.pause", "pool/" + testQueue, "ok"},
		{"pool.resume", "pool/" + testQueue, "ok"},
		{"pool.resize", "pool/" + testQueue, "ok"},
		{"pool.override.clear", "pool/" + testQueue, "ok"},
		{"dlq.redrive.dry_run", "queue/" + testQueue, "ok"},
		{"dlq.purge", "queue/" + testQueue, "ok"},
		{"dlq.redrive", "queue/" + testQueue, "failed"},
		{"task.enqueue", "queue/" + testQueue, "ok"},
		{"source.pause", "source/none", "failed"},
		{"source.resume", "source/none", "failed"},
	}, got)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
