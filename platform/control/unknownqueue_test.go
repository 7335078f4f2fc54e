package control_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/worker"
)

// TestDeadLettersOfAnUnknownQueueAre404: the dead letters and the tasks
// of a queue neither the backend nor a pool knows (a misspelt name)
// answer 404 naming the queue, as GET /admin/v1/queues/{queue} does. A
// re-drive or purge of "all" of them answered 200 "0 of 0 done", audited
// ok (and `host ctl dlq redrive ordrs --all` exited 0), and a list or a
// lookup by key an empty 200: an operator read that the queue held
// nothing. A known queue with nothing in it still answers 200.
func TestDeadLettersOfAnUnknownQueueAre404(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
			const typo = control.Prefix + "/queues/" + testQueue + "x"
			for _, c := range []struct {
				method, path string
				body         any
			}{
				{"GET", typo + "/dead", nil},
				{"GET", typo + "/dead?kind=" + testKind, nil},
				{"GET", typo + "/tasks?key=k1", nil},
				{"POST", typo + "/dead/redrive", control.DeadAction{All: true}},
				{"POST", typo + "/dead/redrive", control.DeadAction{All: true, DryRun: true}},
				{"POST", typo + "/dead/purge", control.DeadAction{Filter: control.DeadFilter{Kind: testKind}}},
				{"POST", typo + "/dead/purge", control.DeadAction{IDs: []string{"a", "b"}}},
			} {
				code, raw := e.call(c.method, c.path, c.body, nil)
				require.Equal(t, http.StatusNotFound, code, "%s %s: %s", c.method, c.path, raw)
				require.Contains(t, raw, `no queue \"`+testQueue+`x\"`, "%s %s", c.method, c.path)
			}

			// The queue itself, empty: found, nothing in it.
			var list control.DeadList
			e.mustCall(http.StatusOK, "GET", deadPath, nil, &list)
			require.Empty(t, list.Items)
			var res control.DeadResult
			e.mustCall(http.StatusOK, "POST", deadPath+"/purge", control.DeadAction{All: true}, &res)
			require.Equal(t, 0, res.Matched)
			e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues/"+testQueue+"/tasks?key=k1", nil, nil)
		})
	}
}
