package control_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/worker"
)

// A re-drive or purge of more ids than MaxDeadActionIDs is refused (400
// naming the cap) before any dead letter is looked at: a 1 MB body of ids
// became hundreds of scans of the dead-letter queue. The cap itself is
// taken.
func TestDeadActionCapsTheIDs(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprint("id", i)
		}
		return out
	}
	for _, action := range []string{"redrive", "purge"} {
		path := control.Prefix + "/queues/" + testQueue + "/dead/" + action
		code, body := e.call("POST", path, control.DeadAction{IDs: ids(control.MaxDeadActionIDs + 1)}, nil)
		require.Equal(t, http.StatusBadRequest, code, body)
		require.Contains(t, body, fmt.Sprint(control.MaxDeadActionIDs))
		var res control.DeadResult
		e.mustCall(http.StatusOK, "POST", path, control.DeadAction{IDs: ids(control.MaxDeadActionIDs)}, &res)
		require.Len(t, res.Failed, control.MaxDeadActionIDs, "none is a dead letter")
	}
}
