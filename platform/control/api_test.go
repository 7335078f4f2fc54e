package control_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

const deadPath = control.Prefix + "/queues/" + testQueue + "/dead"

// deadCount is the queue's dead letters through the API.
func (e *env) deadCount() int {
	var q control.Queue
	e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues/"+testQueue, nil, &q)
	return int(q.Dead)
}

func TestRedriveRerunsTheTask(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 2})
			e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("upstream refused")) })
			ids := e.enqueue(2, `{"order":1}`)
			eventually(t, "two dead letters", func() bool { return e.deadCount() == 2 })

			var dry control.DeadResult
			e.mustCall(http.StatusOK, "POST", deadPath+"/redrive", control.DeadAction{Filter: control.DeadFilter{Reason: "UPSTREAM"}, DryRun: true}, &dry)
			require.Equal(t, control.DeadResult{DryRun: true, Matched: 2, Failed: []control.Failure{}}, dry)
			require.Equal(t, 2, e.deadCount(), "a dry run changes nothing")

			var succeeded []string
			done := make(chan string, 2)
			e.setHandler(func(_ context.Context, tk *task.Task) error {
				require.Equal(t, 1, tk.Attempt, "a re-driven task starts at attempt 1")
				done <- tk.ID
				return nil
			})
			var res control.DeadResult
			e.mustCall(http.StatusOK, "POST", deadPath+"/redrive", control.DeadAction{IDs: []string{ids[0], "no-such-id"}}, &res)
			require.Equal(t, 1, res.Matched)
			require.Equal(t, 1, res.Done)
			require.Len(t, res.Failed, 1)
			require.Equal(t, "no-such-id", res.Failed[0].ID)
			select {
			case id := <-done:
				succeeded = append(succeeded, id)
			case <-time.After(20 * time.Second):
				t.Fatal("the re-driven task did not run again")
			}
			require.Equal(t, []string{ids[0]}, succeeded)
			eventually(t, "one dead letter left", func() bool { return e.deadCount() == 1 })
			eventually(t, "the re-run acked", func() bool { st, _ := e.rt.Pool(testQueue); return st.Stats().Succeeded == 1 })

			// Purge the other one: gone, and never run.
			var purged control.DeadResult
			e.mustCall(http.StatusOK, "POST", deadPath+"/purge", control.DeadAction{All: true}, &purged)
			require.Equal(t, 1, purged.Done)
			require.Equal(t, 0, e.deadCount())
			code, body := e.call("POST", deadPath+"/purge", control.DeadAction{}, nil)
			require.Equal(t, http.StatusBadRequest, code, "an action without a selection: %s", body)
		})
	}
}

func TestDeadLettersPageWithoutPayloads(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
			e.setHandler(func(context.Context, *task.Task) error { return task.Permanent(errors.New("bad input")) })
			big := strings.Repeat("x", control.MaxPayloadShown+100)
			ids := e.enqueue(5, big)
			bin := &task.Task{Kind: testKind, Payload: []byte{0xff, 0xfe, 0x00, 0x01}}
			require.NoError(t, e.rt.Producer().Enqueue(context.Background(), bin))
			ids = append(ids, bin.ID)
			eventually(t, "six dead letters", func() bool { return e.deadCount() == 6 })

			var got []string
			cursor, pages := "", 0
			for {
				var page control.DeadList
				code, raw := e.call("GET", deadPath+"?limit=4&cursor="+cursor, nil, &page)
				require.Equal(t, http.StatusOK, code, raw)
				require.NotContains(t, raw, `"payload"`, "a list carries no payload")
				require.NotContains(t, raw, "xxxx", "a list carries no payload")
				for _, d := range page.Items {
					got = append(got, d.ID)
					require.Equal(t, "bad input", d.Reason)
					require.Equal(t, 1, d.Attempts)
				}
				pages++
				if page.Next == "" {
					break
				}
				cursor = page.Next
			}
			require.Equal(t, 2, pages)
			require.ElementsMatch(t, ids, got)

			var one control.DeadDetail
			e.mustCall(http.StatusOK, "GET", deadPath+"/"+ids[0], nil, &one)
			require.Equal(t, "text", one.PayloadEncoding)
			require.True(t, one.PayloadTruncated)
			require.Len(t, one.Payload, control.MaxPayloadShown)
			require.Equal(t, len(big), one.PayloadSize)
			e.mustCall(http.StatusOK, "GET", deadPath+"/"+bin.ID, nil, &one)
			require.Equal(t, "base64", one.PayloadEncoding)
			require.Equal(t, base64.StdEncoding.EncodeToString(bin.Payload), one.Payload)
			code, _ := e.call("GET", deadPath+"/no-such-id", nil, nil)
			require.Equal(t, http.StatusNotFound, code)
			code, _ = e.call("GET", deadPath+"?cursor=garbage", nil, nil)
			require.Equal(t, http.StatusBadRequest, code)
			code, _ = e.call("GET", deadPath+"?since=yesterday", nil, nil)
			require.Equal(t, http.StatusBadRequest, code)

			var filtered control.DeadList
			e.mustCall(http.StatusOK, "GET", deadPath+"?until="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), nil, &filtered)
			require.Empty(t, filtered.Items)
			e.mustCall(http.StatusOK, "GET", deadPath+"?kind="+testKind+"&reason=BAD", nil, &filtered)
			require.Len(t, filtered.Items, 6)
		})
	}
}

func TestPauseHoldsDeliveriesResumeReleasesThem(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 2})
			var pl control.Pool
			e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/pause", nil, &pl)
			require.Equal(t, lifecycle.Paused, pl.State)
			require.True(t, pl.Stats.Paused)
			require.Equal(t, &queue.PoolOverride{Paused: true}, pl.Override)

			e.enqueue(3, "{}")
			// Held: after a second (many lease rounds) nothing ran and the
			// three wait in the queue.
			time.Sleep(time.Second)
			require.Zero(t, e.ran.Load(), "a paused pool ran a task")
			var q control.Queue
			e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues/"+testQueue, nil, &q)
			require.Equal(t, "paused", q.Pool)
			require.EqualValues(t, 3, q.Ready+q.InFlight+q.Delayed)

			e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/resume", nil, &pl)
			require.Equal(t, lifecycle.Running, pl.State)
			eventually(t, "three tasks ran after resume", func() bool { return e.ran.Load() == 3 })
			// The pool counts a task succeeded once its ack is sent; a
			// backend that acks asynchronously (JetStream's default)
			// shows it gone from the queue a moment later.
			eventually(t, "the queue's counts and the acked tasks add up to three", func() bool {
				e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues/"+testQueue, nil, &q)
				return q.Ready+q.InFlight+q.Delayed+q.Dead+mustAcked(e) == 3
			})
		})
	}
}

// mustAcked is how many tasks the pool acked (the rest of the
// conservation above).
func mustAcked(e *env) int64 {
	p, _ := e.rt.Pool(testQueue)
	return p.Stats().Succeeded
}

func TestResizeChangesBusyWorkers(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 2, BatchSize: 1})
			release := make(chan struct{})
			e.setHandler(func(ctx context.Context, _ *task.Task) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			})
			t.Cleanup(func() { closeOnce(release) })
			e.enqueue(8, "{}")
			busy := func() int64 { p, _ := e.rt.Pool(testQueue); return p.Stats().InFlight }
			eventually(t, "two busy workers", func() bool { return busy() == 2 })
			var pl control.Pool
			e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/resize", control.Resize{Size: 5}, &pl)
			require.Equal(t, &queue.PoolOverride{Size: 5}, pl.Override)
			require.Equal(t, 2, pl.Configured)
			eventually(t, "five busy workers", func() bool { return busy() == 5 })
			code, body := e.call("POST", control.Prefix+"/pools/"+testQueue+"/resize", control.Resize{Size: 0}, nil)
			require.Equal(t, http.StatusBadRequest, code, body)
			code, _ = e.call("POST", control.Prefix+"/pools/no-such-queue/pause", nil, nil)
			require.Equal(t, http.StatusNotFound, code)
			closeOnce(release)
			eventually(t, "all eight ran", func() bool { return mustAcked(e) == 8 })
		})
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func TestOverridesSurviveARestartOnJetStream(t *testing.T) {
	cfg := jetstreamConfig(t)
	b := openJetStream(t, cfg)
	e := newEnv(t, b, b.Overrides(), worker.PoolConfig{Concurrency: 2})
	e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/pause", nil, nil)
	e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/resize", control.Resize{Size: 4}, nil)
	e.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	require.NoError(t, b.Close(ctx))
	cancel()

	b2 := openJetStream(t, cfg)
	e2 := newEnv(t, b2, b2.Overrides(), worker.PoolConfig{Concurrency: 2})
	var pl control.Pool
	e2.mustCall(http.StatusOK, "GET", control.Prefix+"/pools/"+testQueue, nil, &pl)
	require.Equal(t, lifecycle.Paused, pl.State, "paused after the restart")
	require.True(t, pl.OverridesDurable)
	require.Equal(t, &queue.PoolOverride{Paused: true, Size: 4}, pl.Override)
	require.Equal(t, 4, pl.Stats.Workers)
	e2.enqueue(1, "{}")
	time.Sleep(500 * time.Millisecond)
	require.Zero(t, e2.ran.Load(), "the restarted pool ran a task while its override says paused")

	pl = control.Pool{}
	e2.mustCall(http.StatusOK, "DELETE", control.Prefix+"/pools/"+testQueue+"/override", nil, &pl)
	require.Nil(t, pl.Override)
	require.Equal(t, lifecycle.Running, pl.State)
	eventually(t, "the task ran after the override was cleared", func() bool { return e2.ran.Load() == 1 })
	eventually(t, "configured size again", func() bool {
		e2.mustCall(http.StatusOK, "GET", control.Prefix+"/pools/"+testQueue, nil, &pl)
		return pl.Stats.Workers == 2
	})
	saved, err := b2.Overrides().Load(context.Background())
	require.NoError(t, err)
	require.Empty(t, saved, "a cleared override is deleted")
}

func TestMemoryOverridesSayNotDurable(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	var pl control.Pool
	e.mustCall(http.StatusOK, "GET", control.Prefix+"/pools/"+testQueue, nil, &pl)
	require.False(t, pl.OverridesDurable)
}

func TestEnqueueKnownKindOnly(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	got := make(chan string, 1)
	e.setHandler(func(_ context.Context, tk *task.Task) error { got <- string(tk.Payload) + "|" + tk.Key; return nil })
	var out control.Enqueued
	e.mustCall(http.StatusCreated, "POST", control.Prefix+"/tasks", map[string]any{"kind": testKind, "key": "k-1", "payload": map[string]int{"n": 1}}, &out)
	require.Equal(t, testQueue, out.Queue)
	require.Equal(t, "k-1", out.Key)
	select {
	case s := <-got:
		require.Equal(t, `{"n":1}|k-1`, s)
	case <-time.After(20 * time.Second):
		t.Fatal("the enqueued task did not run")
	}
	code, body := e.call("POST", control.Prefix+"/tasks", map[string]any{"kind": "no.such.kind"}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "no route for kind")
	code, _ = e.call("POST", control.Prefix+"/tasks", map[string]any{"kind": testKind, "extra": 1}, nil)
	require.Equal(t, http.StatusBadRequest, code)
}

func TestQueuesListCountsAndRates(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 2})
			e.enqueue(4, "{}")
			eventually(t, "four ran", func() bool { return mustAcked(e) == 4 })
			var list struct{ Queues []control.Queue }
			e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues", nil, &list)
			var q *control.Queue
			for i := range list.Queues {
				if list.Queues[i].Queue == testQueue {
					q = &list.Queues[i]
				}
			}
			require.NotNil(t, q, "queue listed: %+v", list.Queues)
			require.Greater(t, q.EnqueuedPerSec, 0.0)
			require.Greater(t, q.SucceededPerSec, 0.0)
			require.Zero(t, q.FailedPerSec)
			code, _ := e.call("GET", control.Prefix+"/queues/no-such-queue", nil, nil)
			require.Equal(t, http.StatusNotFound, code)
		})
	}
}

var _ = fmt.Sprint

// A task is found by id or key wherever it is: in flight, delayed, ready,
// dead-lettered, and (by key, within the backend's window) finished; the
// answer says where the backend looked.
func TestTaskLookupWhereverTheTaskIs(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // before the runtime stops
			e.setHandler(func(ctx context.Context, tk *task.Task) error {
				switch tk.Key {
				case "dead-1":
					return task.Permanent(errors.New("nope"))
				case "running-1":
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return nil
			})
			ctx := context.Background()
			enqueue := func(tk *task.Task) *task.Task {
				tk.Kind = testKind
				require.NoError(t, e.rt.Producer().Enqueue(ctx, tk))
				return tk
			}
			find := func(path string) control.TaskInfo {
				var info control.TaskInfo
				e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues/"+testQueue+"/tasks"+path, nil, &info)
				require.NotEmpty(t, info.Searched)
				return info
			}
			state := func(info control.TaskInfo) []queue.TaskState {
				var out []queue.TaskState
				for _, f := range info.Found {
					out = append(out, f.State)
				}
				return out
			}

			done := enqueue(&task.Task{Key: "done-1", Payload: []byte("{}")})
			dead := enqueue(&task.Task{Key: "dead-1", Payload: []byte("{}")})
			eventually(t, "a dead letter", func() bool { return e.deadCount() == 1 })
			running := enqueue(&task.Task{Key: "running-1", Payload: []byte("{}")})
			eventually(t, "the task running", func() bool { return e.ran.Load() == 3 })
			later := enqueue(&task.Task{Key: "later-1", NotBefore: time.Now().Add(time.Hour), Payload: []byte("{}")})

			info := find("/" + dead.ID)
			require.Equal(t, []queue.TaskState{queue.StateDead}, state(info))
			require.Contains(t, info.Found[0].Reason, "nope")
			require.Equal(t, "dead-1", info.Found[0].Task.Key)
			require.NotEmpty(t, info.NotSearched, "finished tasks are not found by id, and the answer says so")
			require.Equal(t, []queue.TaskState{queue.StateDead}, state(find("?key=dead-1")))

			info = find("/" + running.ID)
			require.Equal(t, []queue.TaskState{queue.StateInFlight}, state(info))
			require.Equal(t, running.ID, info.Found[0].Task.ID)
			require.Equal(t, []queue.TaskState{queue.StateInFlight}, state(find("?key=running-1")))

			info = find("/" + later.ID)
			require.Equal(t, []queue.TaskState{queue.StateDelayed}, state(info))
			require.WithinDuration(t, later.NotBefore, info.Found[0].DueAt, time.Second)

			info = find("?key=done-1")
			require.Contains(t, strings.Join(info.Searched, ", "), "finished keys")
			if bk.name == "jetstream" { // the memory backend here keeps no window
				// The finished-key marker is published asynchronously.
				eventually(t, "done-1 found succeeded", func() bool {
					return slices.Equal([]queue.TaskState{queue.StateSucceeded}, state(find("?key=done-1")))
				})
			}
			_ = done

			require.Empty(t, find("?key=other").Found)
			code, body := e.call("GET", control.Prefix+"/queues/"+testQueue+"/tasks/unknown", nil, nil)
			require.Equal(t, http.StatusNotFound, code)
			require.Contains(t, body, "searched: ")
			require.Contains(t, body, "dead letters")
		})
	}
}

func TestPprofAndConfig(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	code, body := e.call("GET", control.PprofPrefix+"goroutine?debug=1", nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine profile")
	code, body = e.call("GET", control.PprofPrefix, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "heap")
	code, _ = e.call("GET", control.Prefix+"/config", nil, nil)
	require.Equal(t, http.StatusNotFound, code, "a host without configuration says so")
}

// An enqueue whose key the backend already holds (its task queued, in
// flight or dead-lettered) or remembers as finished stores nothing: the
// API must not answer 201 with the id of a task that does not exist. It
// answers 409 naming what holds the key, and the audit says the call
// failed.
func TestEnqueueOfAHeldKeyIsNotReportedAsEnqueued(t *testing.T) {
	for _, bk := range backends() {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			b, store, _ := bk.open(t)
			e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
			hold := make(chan struct{})
			running := make(chan string, 4)
			e.setHandler(func(ctx context.Context, tk *task.Task) error {
				if tk.Key == "k-dead" {
					return task.Permanent(errors.New("upstream refused"))
				}
				running <- tk.ID
				select {
				case <-hold:
				case <-ctx.Done():
				}
				return nil
			})
			tasks := control.Prefix + "/tasks"

			// Dead-lettered: the key is held by the dead letter.
			var first control.Enqueued
			e.mustCall(http.StatusCreated, "POST", tasks, map[string]any{"kind": testKind, "key": "k-dead", "payload": 1}, &first)
			eventually(t, "a dead letter", func() bool { return e.deadCount() == 1 })
			code, body := e.call("POST", tasks, map[string]any{"kind": testKind, "key": "k-dead", "payload": 2}, nil)
			require.Equal(t, http.StatusConflict, code, "a second enqueue of a dead-lettered key: %s", body)
			require.Contains(t, body, "k-dead")
			require.Contains(t, body, string(task.DeadLettered))

			// In flight: the key is held by the running task.
			var live control.Enqueued
			e.mustCall(http.StatusCreated, "POST", tasks, map[string]any{"kind": testKind, "key": "k-live", "payload": 1}, &live)
			select {
			case id := <-running:
				require.Equal(t, live.ID, id)
			case <-time.After(20 * time.Second):
				t.Fatal("the task did not start")
			}
			code, body = e.call("POST", tasks, map[string]any{"kind": testKind, "key": "k-live", "payload": 2}, nil)
			require.Equal(t, http.StatusConflict, code, "a second enqueue of a key in flight: %s", body)
			require.Contains(t, body, live.ID, "the answer names the task that holds the key")
			require.Contains(t, body, "nothing enqueued")
			close(hold)
			eventually(t, "the held task acked", func() bool { return mustAcked(e) == 1 })

			var results []string
			for _, l := range e.logs.FilterMessage("audit").All() {
				m := l.ContextMap()
				if m["action"] == "task.enqueue" {
					results = append(results, m["result"].(string))
				}
			}
			require.Equal(t, []string{"ok", "failed", "ok", "failed"}, results)
			require.Len(t, running, 0, "no second task ran")
		})
	}
}
