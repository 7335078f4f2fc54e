package control_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// refusing is a backend whose Redrive leaves every dead letter, each
// named with its reason in the error, as JetStream's does for dead
// letters it cannot re-drive (succeeded since, too large, ...).
type refusing struct{ queue.Backend }

func (refusing) Redrive(_ context.Context, q string, ids ...string) (int, error) {
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = fmt.Errorf("redrive task %s to %q: left for its own reason", id, q)
	}
	return 0, errors.Join(errs...)
}

// A re-drive that leaves dead letters, the backend naming each with its
// reason, answers each failed id with its own reason: each answered the
// backend's whole error (every id's reason), so that the answer named
// other dead letters' reasons for each and grew with the square of the
// ids (hundreds of ids: tens of megabytes).
func TestRedriveFailureNamesEachDeadLettersOwnReason(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnvAPI(t, b, refusing{b}, store, worker.PoolConfig{Concurrency: 2})
	e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
	const n = 300
	e.enqueue(n, "{}")
	eventually(t, "the dead letters", func() bool { return e.deadCount() == n })

	var res control.DeadResult
	code, body := e.call("POST", deadPath+"/redrive", control.DeadAction{All: true}, &res)
	require.Equal(t, http.StatusOK, code)
	require.Less(t, len(body), 200<<10, "the answer's size grows with the ids, not their square")
	require.Equal(t, n, res.Matched)
	require.Len(t, res.Failed, n)
	for _, f := range res.Failed {
		require.Contains(t, f.Error, "redrive task "+f.ID+" ", "its own reason")
		require.Less(t, len(f.Error), 500, "its own reason only: %.300s", f.Error)
	}
}
