package loadgen_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/modules/loadgen"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, loadgen.DefaultConfig().Validate())
	err := loadgen.Config{Count: -1, Batch: 0, Work: -time.Second}.Validate()
	require.Error(t, err)
	for _, k := range []string{"count", "batch", "queue", "work"} {
		require.Contains(t, err.Error(), k)
	}
}

// The module in a host on the memory backend: every emitted task is
// handled and recorded exactly once.
func TestEveryTaskRecordedOnce(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "handled.txt")
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: []string{
		"admin.listen=127.0.0.1:0", "log.level=error",
		"loadgen.count=2000", "loadgen.batch=128", "loadgen.record_file=" + rec,
	}})
	require.NoError(t, err)
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), loadgen.Module)
	app.RequireStart()
	lines := func() []string {
		b, err := os.ReadFile(rec)
		require.NoError(t, err)
		return strings.Fields(string(b))
	}
	require.Eventually(t, func() bool { return len(lines()) >= 2000 }, 30*time.Second, 10*time.Millisecond)
	app.RequireStop()
	got := lines()
	require.Len(t, got, 2000)
	seen := map[string]bool{}
	for _, id := range got {
		require.False(t, seen[id], "handled twice: %s", id)
		seen[id] = true
	}
	require.True(t, seen[loadgen.ID(0)] && seen[loadgen.ID(1999)])
}

// TestBuildingTheGraphWritesNothing: building the module's graph (what
// `host config validate` does) creates no record file; starting the host
// does, and stopping it closes it.
func TestBuildingTheGraphWritesNothing(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "handled.txt")
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: []string{
		"admin.listen=127.0.0.1:0", "log.level=error", "loadgen.record_file=" + rec,
	}})
	require.NoError(t, err)
	require.NoError(t, fx.New(fx.NopLogger, platform.Module(cfg, platform.Info{}), loadgen.Module).Err())
	_, err = os.Stat(rec)
	require.ErrorIs(t, err, os.ErrNotExist, "building the graph created the record file")

	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), loadgen.Module)
	app.RequireStart()
	_, err = os.Stat(rec)
	require.NoError(t, err, "start opens the record file")
	app.RequireStop()
}

// With every set, the module's schedule enqueues one tick per second,
// recorded with its due time, each once.
func TestTicksRecordedOncePerDueTime(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "handled.txt")
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: []string{
		"admin.listen=127.0.0.1:0", "log.level=error", "loadgen.every=1s", "loadgen.record_file=" + rec,
	}})
	require.NoError(t, err)
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), loadgen.Module)
	app.RequireStart()
	ticks := func() []string {
		b, err := os.ReadFile(rec)
		require.NoError(t, err)
		return strings.Fields(string(b))
	}
	require.Eventually(t, func() bool { return len(ticks()) >= 2 }, 10*time.Second, 10*time.Millisecond)
	app.RequireStop()
	seen := map[string]bool{}
	for _, l := range ticks() {
		require.True(t, strings.HasPrefix(l, "tick@"), l)
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(l, "tick@"))
		require.NoError(t, err)
		require.Equal(t, at.Truncate(time.Second), at, "on the second")
		require.False(t, seen[l], "twice: %s", l)
		seen[l] = true
	}
	require.Error(t, loadgen.Config{Batch: 1, Queue: "q", Every: time.Millisecond}.Validate())
}

// fail_first and dead_every on the memory backend: every task fails its
// first attempt, each tenth fails every attempt; the attempt file shows
// each run with its attempt, the record file the successes only.
func TestFailingAttemptsAreRecorded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec, att := filepath.Join(dir, "handled.txt"), filepath.Join(dir, "attempts.txt")
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: []string{
		"admin.listen=127.0.0.1:0", "log.level=error",
		"loadgen.count=100", "loadgen.record_file=" + rec, "loadgen.attempt_file=" + att,
		"loadgen.fail_first=1", "loadgen.dead_every=10",
		"workers.loadgen.max_attempts=3", "workers.loadgen.backoff.initial=1ms", "workers.loadgen.backoff.max=2ms",
	}})
	require.NoError(t, err)
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), loadgen.Module)
	app.RequireStart()
	read := func(p string) []string {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	// 90 tasks run twice, 10 three times.
	require.Eventually(t, func() bool { return len(read(att)) >= 90*2+10*3 }, 30*time.Second, 10*time.Millisecond)
	app.RequireStop()
	require.Len(t, read(rec), 90)
	runs := map[string][]string{}
	for _, l := range read(att) {
		f := strings.Fields(l)
		require.Len(t, f, 3, l)
		runs[f[0]] = append(runs[f[0]], f[1]+" "+f[2])
	}
	require.Len(t, runs, 100)
	require.Equal(t, []string{"1 fail", "2 ok"}, runs[loadgen.ID(1)])
	require.Equal(t, []string{"1 fail", "2 fail", "3 fail"}, runs[loadgen.ID(10)])
	i, ok := loadgen.Index(loadgen.ID(42))
	require.True(t, ok)
	require.Equal(t, 42, i)
	_, ok = loadgen.Index("other")
	require.False(t, ok)
	// Only the ids ID makes: another spelling of the number is another id.
	for _, id := range []string{"lg-5", "lg-+000005", "lg--000000", "lg-0000005 ", "lg-"} {
		_, ok = loadgen.Index(id)
		require.False(t, ok, id)
	}
	i, ok = loadgen.Index(loadgen.ID(12345678))
	require.True(t, ok)
	require.Equal(t, 12345678, i)
	require.Error(t, loadgen.Config{Batch: 1, Queue: "q", FailFirst: -1}.Validate())
	require.Error(t, loadgen.Config{Batch: 1, Queue: "q", DeadEvery: -1}.Validate())
}
