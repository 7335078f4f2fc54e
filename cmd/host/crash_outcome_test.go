package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/loadgen"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
)

// outcomeRun is a loadgen host on embedded JetStream whose handler records
// every attempt it runs (loadgen.attempt_file) beside the successes
// (loadgen.record_file), so that what the runtime reports can be checked
// against what the handler really did.
type outcomeRun struct {
	n     int
	store string
	rec   string
	att   string
	cfg   string
}

// newOutcomeRun writes the configuration: n tasks emitted on every start,
// the pool and loadgen settings in pool and lg (YAML lines, indented
// under workers.loadgen and loadgen).
func newOutcomeRun(t *testing.T, n int, pool, lg string) *outcomeRun {
	t.Helper()
	dir := t.TempDir()
	r := &outcomeRun{n: n, store: filepath.Join(dir, "nats"), rec: filepath.Join(dir, "handled.txt"), att: filepath.Join(dir, "attempts.txt")}
	r.cfg = writeFile(t, "outcome.yaml", fmt.Sprintf(`host:
  apps: [loadgen]
log:
  format: json
  level: info
admin:
  listen: 127.0.0.1:0
queue:
  backend: jetstream
  jetstream:
    ack_wait: 3s
    duplicate_window: 30m
    embedded:
      store_dir: %s
workers:
  loadgen:
%s
loadgen:
  count: %d
  batch: 500
  record_file: %s
  attempt_file: %s
%s
`, r.store, pool, n, r.rec, r.att, lg))
	return r
}

// run is one handler run of a task, as the attempt file records it.
type run struct {
	attempt int
	ok      bool
}

// runs returns the attempt file's runs by task id, and how many there are.
func (r *outcomeRun) runs(t *testing.T) (map[string][]run, int) {
	t.Helper()
	b, err := os.ReadFile(r.att)
	if os.IsNotExist(err) {
		return map[string][]run{}, 0
	}
	require.NoError(t, err)
	out := map[string][]run{}
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue // a line cut by a kill
		}
		a, err := strconv.Atoi(f[1])
		require.NoError(t, err, line)
		out[f[0]] = append(out[f[0]], run{attempt: a, ok: f[2] == "ok"})
		total++
	}
	return out, total
}

// queueStats reads the queue's counts from a running host's admin API.
func queueStats(t *testing.T, addr string) queue.Stats {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/admin/v1/queues/loadgen")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st queue.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// dead opens the stopped host's store and returns its dead letters by
// task id, each with how many times it is listed.
func (r *outcomeRun) dead(t *testing.T) (map[string][]queue.DeadLetter, queue.Stats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var jc jetstream.Config
	jc.Embedded.StoreDir = r.store
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jc})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close(context.Background())) }()
	dls, err := b.ListDead(ctx, "loadgen", 10*r.n)
	require.NoError(t, err)
	out := map[string][]queue.DeadLetter{}
	for _, d := range dls {
		out[d.Task.ID] = append(out[d.Task.ID], d)
	}
	st, err := b.Stats(ctx, "loadgen")
	require.NoError(t, err)
	return out, st
}

// Every task has exactly one final outcome across kills while tasks are
// being retried and dead-lettered. 2,000 keyed tasks; the handler fails
// the first attempt of every task and every attempt of each tenth
// (max_attempts 3). The host is SIGKILLed twice midway and restarted with
// the same configuration (which emits all 2,000 again: every key already
// queued, finished or dead is dropped as a duplicate); the last host runs
// until nothing is queued. Then each of the 1,800 tasks that can succeed
// has succeeded and is not in the dead letter, each of the 200 others is
// in the dead letter exactly once, with the handler's error as reason,
// and never succeeded; no task ran past its last attempt, and no task
// that can succeed was run after it succeeded except once per kill
// (handled, not yet acked). A task may run more often than max_attempts
// all the same: the embedded server, killed with the process, forgets the
// deliveries (and acks) of its last moments, so an attempt can run again
// under the same number (logged: at most 5 runs in 10 runs of the test).
func TestCrashWhileRetryingAndDeadLetteringLeavesOneOutcomePerTask(t *testing.T) {
	t.Parallel()
	const (
		n           = 2000
		maxAttempts = 3
		deadEvery   = 10
		kills       = 2
	)
	r := newOutcomeRun(t, n, `    concurrency: 8
    max_attempts: 3
    drain_timeout: 1s
    backoff:
      initial: 10ms
      max: 50ms`, `  work: 1ms
  fail_first: 1
  dead_every: 10`)
	total := (n-n/deadEvery)*2 + n/deadEvery*maxAttempts // runs without kills
	for k, point := range []int{total / 3, total * 2 / 3} {
		p := startHost(t, nil, "--config", r.cfg)
		p.adminAddr(t)
		require.Eventually(t, func() bool {
			byID, runs := r.runs(t)
			deadRuns := 0
			for id, rs := range byID {
				if i, _ := loadgen.Index(id); i%deadEvery == 0 {
					deadRuns += len(rs)
				}
			}
			return runs >= point && deadRuns > 0
		}, 120*time.Second, 2*time.Millisecond, "%d runs: %s", point, p.output())
		stopped(t, p, syscall.SIGKILL)
		_, runs := r.runs(t)
		t.Logf("kill %d after %d handler runs", k+1, runs)
	}

	p := startHost(t, nil, "--config", r.cfg)
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool {
		ids, _ := recorded(t, r.rec)
		if len(ids) < n-n/deadEvery {
			return false
		}
		st := queueStats(t, addr)
		return st.Ready+st.Delayed+st.InFlight == 0 && strings.Contains(p.output(), `"msg":"loadgen emitted"`)
	}, 120*time.Second, 20*time.Millisecond, "all settled: %s", p.output())
	stopped(t, p, syscall.SIGTERM)

	dead, st := r.dead(t)
	require.Zero(t, st.Ready+st.Delayed+st.InFlight, "nothing left queued: %+v", st)
	require.EqualValues(t, n/deadEvery, st.Dead, "dead letters counted: %+v", st)
	ok, _ := recorded(t, r.rec)
	byID, runs := r.runs(t)
	var again, short, most int
	for i := range n {
		id := loadgen.ID(i)
		rs := byID[id]
		most = max(most, len(rs))
		for _, x := range rs {
			require.LessOrEqual(t, x.attempt, maxAttempts, "task %s ran past its last attempt: %+v", id, rs)
		}
		if i%deadEvery == 0 {
			require.Zero(t, ok[id], "task %s always fails, yet it is recorded as succeeded", id)
			require.Len(t, dead[id], 1, "task %s: dead letters %+v", id, dead[id])
			d := dead[id][0]
			// The handler's error, or, when the kill cut the settlement
			// of the last attempt, that it came back past it.
			require.True(t, strings.Contains(d.Reason, "fails every attempt") || strings.Contains(d.Reason, "after its last attempt"),
				"task %s: reason %q", id, d.Reason)
			require.GreaterOrEqual(t, len(rs), 1, "task %s dead-lettered without a run", id)
			require.LessOrEqual(t, d.Task.Attempt, maxAttempts+kills, "task %s: attempts of its dead letter", id)
			for _, x := range rs {
				require.False(t, x.ok, "task %s: %+v", id, rs)
			}
			if len(rs) < maxAttempts {
				short++ // a delivery the kill cut before it ran still counts
			}
			continue
		}
		require.NotZero(t, ok[id], "task %s can succeed and was never recorded as succeeded (runs %+v)", id, rs)
		require.Empty(t, dead[id], "task %s succeeded and is in the dead letter too", id)
		successes := 0
		for _, x := range rs {
			if x.ok {
				successes++
			}
		}
		require.LessOrEqual(t, ok[id], successes, "task %s: records and ok runs", id)
		require.LessOrEqual(t, successes, 1+kills, "task %s succeeded %d times", id, successes)
		again += successes - 1
	}
	require.Len(t, dead, n/deadEvery, "no unknown dead letters")
	t.Logf("%d handler runs (%d without kills); %d successes ran again after a kill; %d dead letters ran fewer than %d times; a task ran at most %d times",
		runs, total, again, short, maxAttempts, most)
}

// A stop under load gives back every task it did not finish, counting no
// attempt for it: 4,000 keyed tasks that each take 20ms on 16 workers; the
// host gets SIGTERM midway with a drain timeout (50ms) that cuts the
// handlers still running, so the stop gives back the hand-over buffer,
// the prefetched messages and the cancelled deliveries. The host exits 0
// within its stop timeout; a host started again with the same
// configuration finishes the rest. Every task ran to success exactly once,
// and every handler run that was recorded, before the stop and after it,
// was the task's first attempt: nothing that the stop gave back came back
// with an attempt counted.
func TestSIGTERMUnderLoadGivesBackUnrunWorkUncounted(t *testing.T) {
	t.Parallel()
	const (
		n           = 4000
		stopTimeout = 15 * time.Second
	)
	r := newOutcomeRun(t, n, `    concurrency: 16
    drain_timeout: 50ms`, `  work: 20ms`)
	stopAt := []string{"--config", r.cfg, "--set", "lifecycle.stop_timeout=" + stopTimeout.String()}
	p := startHost(t, nil, stopAt...)
	p.adminAddr(t)
	require.Eventually(t, func() bool { ids, _ := recorded(t, r.rec); return len(ids) >= n*3/10 }, 120*time.Second, 2*time.Millisecond,
		"%d recorded: %s", n*3/10, p.output())
	began := time.Now()
	stopped(t, p, syscall.SIGTERM)
	took := time.Since(began)
	before, _ := recorded(t, r.rec)
	t.Logf("stopped %s after SIGTERM with %d of %d tasks recorded", took.Round(time.Millisecond), len(before), n)
	require.Less(t, took, stopTimeout, "the stop used its whole timeout: %s", p.output())
	require.Less(t, len(before), n, "the stop must land midway")
	require.NotContains(t, p.output(), "fell back to a negative ack")

	p = startHost(t, nil, stopAt...)
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool {
		ids, _ := recorded(t, r.rec)
		if len(ids) < n || !strings.Contains(p.output(), `"msg":"loadgen emitted"`) {
			return false
		}
		st := queueStats(t, addr)
		return st.Ready+st.Delayed+st.InFlight == 0
	}, 120*time.Second, 20*time.Millisecond, "all handled: %s", p.output())
	stopped(t, p, syscall.SIGTERM)

	ok, lines := recorded(t, r.rec)
	require.Len(t, ok, n, "no unknown ids")
	require.Equal(t, n, lines, "after a clean stop nothing runs twice")
	byID, runs := r.runs(t)
	for i := range n {
		id := loadgen.ID(i)
		require.Equal(t, []run{{attempt: 1, ok: true}}, byID[id], "task %s", id)
	}
	require.Equal(t, n, runs)
	dead, st := r.dead(t)
	require.Empty(t, dead)
	require.Zero(t, st.Ready+st.Delayed+st.InFlight+st.Dead, "nothing left: %+v", st)
}

// A task the runtime dead-lettered stays dead-lettered across kills: it
// is never also run to success. 2,000 keyed tasks whose handler fails
// their first 3 attempts and would succeed from the 4th on, with
// max_attempts 3; the host is SIGKILLed three times while it dead-letters
// them. A task whose dead letter was stored but whose message the server
// still held when the process died comes back past its last attempt, and
// so does one whose last attempt the kill cut before it was settled (or
// before it ran: the server counted the delivery). Such a delivery is
// dead-lettered without running. Every task is in the dead letter exactly
// once and none succeeded. (Before, the pool ran such a delivery: in 2 of
// 6 runs a task was both in the dead letter and succeeded, with 3 failed
// attempts and a 4th that succeeded.)
func TestCrashWhileDeadLetteringNeverAlsoSucceeds(t *testing.T) {
	t.Parallel()
	const (
		n           = 2000
		maxAttempts = 3
		kills       = 6
	)
	r := newOutcomeRun(t, n, `    concurrency: 8
    max_attempts: 3
    drain_timeout: 1s
    backoff:
      initial: 10ms
      max: 50ms`, `  work: 1ms
  fail_first: 3`)
	total := n * maxAttempts
	for k := range kills {
		point := total * (k + 1) / (kills + 1)
		p := startHost(t, nil, "--config", r.cfg)
		p.adminAddr(t)
		require.Eventually(t, func() bool { _, runs := r.runs(t); return runs >= point }, 120*time.Second, 2*time.Millisecond,
			"%d runs: %s", point, p.output())
		stopped(t, p, syscall.SIGKILL)
		_, runs := r.runs(t)
		t.Logf("kill %d after %d handler runs", k+1, runs)
	}
	p := startHost(t, nil, "--config", r.cfg)
	addr := p.adminAddr(t)
	var last queue.Stats
	require.Eventually(t, func() bool {
		last = queueStats(t, addr)
		ok, _ := recorded(t, r.rec)
		return last.Ready+last.Delayed+last.InFlight == 0 && int(last.Dead)+len(ok) >= n &&
			strings.Contains(p.output(), `"msg":"loadgen emitted"`)
	}, 120*time.Second, 20*time.Millisecond, "all settled (last %+v): %s", last, p.output())
	stopped(t, p, syscall.SIGTERM)

	dead, st := r.dead(t)
	ok, _ := recorded(t, r.rec)
	byID, runs := r.runs(t)
	for i := range n {
		id := loadgen.ID(i)
		rs := byID[id]
		require.Zero(t, ok[id], "task %s succeeded (runs %+v, dead letters %+v)", id, rs, dead[id])
		require.Len(t, dead[id], 1, "task %s: dead letters %+v, runs %+v", id, dead[id], rs)
		fails := 0
		for _, x := range rs {
			require.LessOrEqual(t, x.attempt, maxAttempts, "task %s ran past its last attempt: %+v", id, rs)
			fails++
		}
		if fails == 0 {
			// Each of its attempts was cut by a kill before the handler
			// recorded it (mid-work, or the delivery still in the
			// prefetch buffer): only the delivery past its last attempt
			// may dead-letter it without a run (seen once in a loaded CI
			// run, with an AckWait of 3s bringing cut deliveries back
			// into the next kill).
			require.Contains(t, dead[id][0].Reason, "delivered again after its last attempt", "task %s dead-lettered without a run: %+v", id, dead[id])
		}
	}
	require.Len(t, dead, n, "no unknown dead letters")
	require.Zero(t, st.Ready+st.Delayed+st.InFlight, "nothing left queued: %+v", st)
	require.EqualValues(t, n, st.Dead, "dead letters counted: %+v", st)
	most := 0
	for _, rs := range byID {
		most = max(most, len(rs))
	}
	t.Logf("%d handler runs (%d without kills); a task ran at most %d times", runs, total, most)
}
