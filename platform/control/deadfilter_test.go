package control_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// A filter whose since is not before its until (the two swapped) selects
// nothing by construction: the list and the actions refuse it with 400
// naming both, rather than answering 200 with nothing matched (a purge
// or re-drive that "succeeded" and did nothing), and nothing is done.
func TestDeadFilterWithSinceNotBeforeUntilIsRefused(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
	e.enqueue(1, "{}")
	eventually(t, "one dead letter", func() bool { return e.deadCount() == 1 })

	now := time.Now().UTC()
	since, until := now.Add(time.Hour), now.Add(-time.Hour) // swapped
	v := url.Values{"since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}}
	code, body := e.call("GET", deadPath+"?"+v.Encode(), nil, nil)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "since")
	require.Contains(t, body, "until")
	v.Set("until", v.Get("since")) // equal: an empty range too
	code, body = e.call("GET", deadPath+"?"+v.Encode(), nil, nil)
	require.Equal(t, http.StatusBadRequest, code, body)

	for _, action := range []string{"redrive", "purge"} {
		for _, dry := range []bool{false, true} {
			code, body := e.call("POST", deadPath+"/"+action,
				control.DeadAction{Filter: control.DeadFilter{Since: since, Until: until}, DryRun: dry}, nil)
			require.Equal(t, http.StatusBadRequest, code, "%s (dry run %v): %s", action, dry, body)
			require.Contains(t, body, "since")
		}
	}
	require.Equal(t, 1, e.deadCount(), "nothing was done")

	// A filter with since before until still works.
	var res control.DeadResult
	e.mustCall(http.StatusOK, "POST", deadPath+"/purge",
		control.DeadAction{Filter: control.DeadFilter{Since: until, Until: since}, DryRun: true}, &res)
	require.Equal(t, 1, res.Matched)
}
