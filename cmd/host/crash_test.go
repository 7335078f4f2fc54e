package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/loadgen"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
)

// recorded returns the ids in the record file, and how many lines it has.
func recorded(t *testing.T, path string) (map[string]int, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]int{}, 0
	}
	require.NoError(t, err)
	ids := map[string]int{}
	lines := strings.Fields(string(b))
	for _, id := range lines {
		ids[id]++
	}
	return ids, len(lines)
}

// The durable backend loses nothing when the host is killed: 20,000 tasks
// are queued on the embedded JetStream server, the host is SIGKILLed while
// working through them, a new host on the same store directory finishes
// them, and every task was handled at least once with nothing left queued.
func TestCrashSafetyJetStreamEmbedded(t *testing.T) {
	t.Parallel()
	const n = 20000
	dir := t.TempDir()
	store := filepath.Join(dir, "nats")
	rec := filepath.Join(dir, "handled.txt")
	cfgFile := func(count int) string {
		return writeFile(t, fmt.Sprintf("crash-%d.yaml", count), fmt.Sprintf(`host:
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
    embedded:
      store_dir: %s
workers:
  loadgen:
    concurrency: 8
    drain_timeout: 1s
loadgen:
  count: %d
  batch: 500
  work: 500us
  record_file: %s
`, store, count, rec))
	}

	// First run: emit everything, then die midway through the work.
	began := time.Now()
	p := startHost(t, nil, "--config", cfgFile(n))
	p.adminAddr(t)
	require.Eventually(t, func() bool { return strings.Contains(p.output(), `"msg":"loadgen emitted"`) },
		60*time.Second, 10*time.Millisecond, "all tasks enqueued: %s", p.output())
	require.Eventually(t, func() bool { _, lines := recorded(t, rec); return lines >= n/10 }, 60*time.Second, time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.wait(t, 10*time.Second)
	before, linesBefore := recorded(t, rec)
	t.Logf("killed after %d of %d tasks were recorded (%s after start)", len(before), n, time.Since(began).Round(time.Millisecond))
	restarted := time.Now()
	require.Less(t, len(before), n, "the kill must land midway for the test to mean anything")

	// Second run: emit nothing, only consume what the store kept.
	p2 := startHost(t, nil, "--config", cfgFile(0))
	p2.adminAddr(t)
	require.Eventually(t, func() bool { ids, _ := recorded(t, rec); return len(ids) == n }, 120*time.Second, 20*time.Millisecond,
		"every task handled after the restart")
	t.Logf("the restarted host finished the rest in %s", time.Since(restarted).Round(time.Millisecond))
	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p2.wait(t, 30*time.Second), p2.output())
	t.Logf("stopped %s after SIGTERM", time.Since(restarted).Round(time.Millisecond))

	ids, lines := recorded(t, rec)
	for i := range n {
		if ids[loadgen.ID(i)] == 0 {
			t.Fatalf("task %s was never handled", loadgen.ID(i))
		}
	}
	require.Len(t, ids, n, "no unknown ids")
	t.Logf("handled %d tasks, %d duplicates (redelivered after the kill: handled but not acked); %d lines before the kill",
		n, lines-n, linesBefore)

	// Nothing is left in the queue: open the same store in process.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var jc jetstream.Config
	jc.Embedded.StoreDir = store
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jc})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close(context.Background())) }()
	t.Logf("store reopened %s after SIGTERM", time.Since(restarted).Round(time.Millisecond))
	// Seen once in about 40 runs: one "delayed" task no consumer held.
	// That is what a message acked as the server stopped looks like when
	// it stays stored at or below the consumer's ack floor, which
	// nats-server never cleans up on a work-queue stream; Stats no longer
	// counts such a message and opening the queue deletes it (jetstream
	// orphan.go, orphan_test.go). The wait stays for anything the server
	// settles after the reopen.
	var st queue.Stats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err = b.Stats(ctx, "loadgen")
		require.NoError(t, err)
		if st.Ready+st.InFlight+st.Delayed+st.Dead == 0 || time.Now().After(deadline) {
			break
		}
	}
	require.Zero(t, st.Ready+st.InFlight+st.Delayed+st.Dead, "nothing left in the queue: %+v", st)
}
