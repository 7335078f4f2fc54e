package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/loadgen"
	"github.com/plba/plba/platform/queue"
)

// A host killed while it re-drives dead letters leaves each of them in one
// place: 2,000 keyed tasks are dead-lettered (their only attempt fails),
// then a host whose handler succeeds re-drives them all from the admin API
// and is SIGKILLed midway. After a restart, once nothing is queued, every
// task either succeeded and is no longer a dead letter, or is still a dead
// letter, once, and did not succeed: never both, never neither.
func TestCrashDuringRedriveLeavesEachDeadLetterInOnePlace(t *testing.T) {
	t.Parallel()
	const n = 2000
	r := newOutcomeRun(t, n, `    concurrency: 8
    max_attempts: 1`, `  work: 1ms
  fail_first: 1`)
	p := startHost(t, nil, "--config", r.cfg)
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool { return queueStats(t, addr).Dead >= n }, 120*time.Second, 20*time.Millisecond,
		"all dead-lettered: %s", p.output())
	stopped(t, p, syscall.SIGTERM)

	// Healed, and with attempts to spare: a re-driven task whose
	// attempt the kill cut (run, not settled) is run again after the
	// restart. With one attempt, its redelivery would be past its last
	// attempt and dead-lettered as such: the handler's success was never
	// settled, so that is its outcome, and a correct one, but not the
	// one this test is about.
	healed := []string{"--config", r.cfg, "--set", "loadgen.fail_first=0", "--set", "loadgen.count=0",
		"--set", "workers.loadgen.max_attempts=3"}
	p = startHost(t, nil, healed...)
	addr = p.adminAddr(t)
	answered := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/admin/v1/queues/loadgen/dead/redrive", "application/json", strings.NewReader(`{"all":true}`))
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	require.Eventually(t, func() bool { ids, _ := recorded(t, r.rec); return len(ids) >= n/10 }, 120*time.Second, time.Millisecond,
		"re-driven tasks ran: %s", p.output())
	stopped(t, p, syscall.SIGKILL)
	require.Error(t, <-answered, "the redrive call must be cut by the kill")
	ids, _ := recorded(t, r.rec)
	t.Logf("killed with %d of %d re-driven tasks run", len(ids), n)

	p = startHost(t, nil, healed...)
	addr = p.adminAddr(t)
	var last queue.Stats
	require.Eventually(t, func() bool {
		last = queueStats(t, addr)
		ok, _ := recorded(t, r.rec)
		return last.Ready+last.Delayed+last.InFlight == 0 && int(last.Dead)+len(ok) >= n
	}, 120*time.Second, 20*time.Millisecond, "all settled (last %+v): %s", last, p.output())
	stopped(t, p, syscall.SIGTERM)

	dead, st := r.dead(t)
	ok, _ := recorded(t, r.rec)
	var both, neither []string
	for i := range n {
		id := loadgen.ID(i)
		require.LessOrEqual(t, len(dead[id]), 1, "task %s: dead letters %+v", id, dead[id])
		switch {
		case ok[id] > 0 && len(dead[id]) > 0:
			both = append(both, fmt.Sprintf("%s (dead letter: attempt %d, %q)", id, dead[id][0].Task.Attempt, dead[id][0].Reason))
		case ok[id] == 0 && len(dead[id]) == 0:
			neither = append(neither, id)
		}
	}
	t.Logf("after the restart: %d succeeded, %d still dead", len(ok), len(dead))
	require.Empty(t, both, "succeeded and still a dead letter")
	require.Empty(t, neither, "neither succeeded nor a dead letter")
	require.Zero(t, st.Ready+st.Delayed+st.InFlight, "nothing left queued: %+v", st)
	require.EqualValues(t, len(dead), st.Dead)
}
