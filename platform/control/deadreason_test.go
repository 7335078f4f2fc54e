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

// refusing is a backend whose Redrive leaves every dead letter, each
// reported with its reason (a queue.DeadLetterError), as JetStream's
// does for dead letters it cannot re-drive (succeeded since, too large,
// ...).
type refusing struct{ queue.Backend }

func (refusing) Redrive(_ context.Context, q string, ids ...string) (int, error) {
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = fmt.Errorf("redrive to %q: %w", q, &queue.DeadLetterError{ID: id, Err: errors.New("left for its own reason")})
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
		require.Contains(t, f.Error, "task "+f.ID+": left for its own reason", "its own reason")
		require.Less(t, len(f.Error), 500, "its own reason only: %.300s", f.Error)
	}
}

// leaving is a backend whose Redrive and Purge do nothing and answer
// what answer returns for the ids they were given, which it records.
type leaving struct {
	queue.Backend
	answer func(ids []string) error
	mu     sync.Mutex
	got    []string
}

func (l *leaving) Redrive(_ context.Context, _ string, ids ...string) (int, error) {
	l.mu.Lock()
	l.got = append([]string(nil), ids...)
	l.mu.Unlock()
	return 0, l.answer(ids)
}

func (l *leaving) Purge(ctx context.Context, q string, ids ...string) (int, error) {
	return l.Redrive(ctx, q, ids...)
}

// given returns the ids of the last call.
func (l *leaving) given() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got
}

// Each dead letter an action left is answered with the reason the
// backend reported for it (its queue.DeadLetterError), and one the
// backend did not report with why the action stopped, or else that it is
// still a dead letter: never another dead letter's reason. The reasons
// were found by looking for the id in the text of the backend's error:
// a dead letter whose id stood in another's reason (a backend's "waits
// for task <id>") got that other reason, and one named nowhere got the
// error's last part, another dead letter's reason.
func TestDeadActionAnswersNoOtherDeadLettersReason(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	l := &leaving{Backend: b}
	e := newEnvAPI(t, b, l, store, worker.PoolConfig{Concurrency: 2})
	e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("no")) })
	e.enqueue(3, "{}")
	eventually(t, "three dead letters", func() bool { return e.deadCount() == 3 })
	reasonOf := func(res control.DeadResult) map[string]string {
		m := map[string]string{}
		for _, f := range res.Failed {
			m[f.ID] = f.Error
		}
		require.Len(t, m, 3, "each accounted for: %+v", res)
		return m
	}

	// The first left for a reason whose text names the second, then the
	// backend stopped before the second.
	l.answer = func(ids []string) error {
		return errors.Join(
			fmt.Errorf("redrive: %w", &queue.DeadLetterError{ID: ids[0], Err: fmt.Errorf("its copy waits for task %s to finish", ids[1])}),
			errors.New("redrive stopped: server unavailable"))
	}
	var res control.DeadResult
	e.mustCall(http.StatusOK, "POST", deadPath+"/redrive", control.DeadAction{All: true}, &res)
	ids, why := l.given(), reasonOf(res)
	require.Len(t, ids, 3)
	require.Contains(t, why[ids[0]], "its copy waits for task "+ids[1])
	for _, id := range ids[1:] {
		require.Contains(t, why[id], "server unavailable", "why the action stopped before it")
		require.NotContains(t, why[id], "waits for", "not another dead letter's reason")
	}

	// The first and the last left for reasons of their own; the second
	// not reported (the backend stopped for no reason it said).
	l.answer = func(ids []string) error {
		return errors.Join(
			fmt.Errorf("purge: %w", &queue.DeadLetterError{ID: ids[0], Err: errors.New("first's own reason")}),
			fmt.Errorf("purge: %w", &queue.DeadLetterError{ID: ids[2], Err: errors.New("last's own reason")}))
	}
	res = control.DeadResult{}
	e.mustCall(http.StatusOK, "POST", deadPath+"/purge", control.DeadAction{All: true}, &res)
	ids, why = l.given(), reasonOf(res)
	require.Len(t, ids, 3)
	require.Contains(t, why[ids[0]], "first's own reason")
	require.Contains(t, why[ids[2]], "last's own reason")
	require.Equal(t, "still a dead letter after the action", why[ids[1]], "not another dead letter's reason")
}
