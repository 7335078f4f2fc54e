package platform_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
)

// hookOrder is an fxevent.Logger that records the callers of the OnStart
// hooks in the order they run.
type hookOrder struct {
	mu      sync.Mutex
	callers []string
}

func (h *hookOrder) LogEvent(e fxevent.Event) {
	if s, ok := e.(*fxevent.OnStartExecuting); ok {
		h.mu.Lock()
		h.callers = append(h.callers, s.CallerName)
		h.mu.Unlock()
	}
}

// first returns the index of the first hook whose caller contains part.
func (h *hookOrder) first(t *testing.T, part string) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range h.callers {
		if strings.Contains(c, part) {
			return i
		}
	}
	t.Fatalf("no OnStart hook of %s in %v", part, h.callers)
	return -1
}

// The start and stop table of docs/architecture.md lists the parts in the
// order the host starts them: the health checks start after the queue
// backend and before the pools (the health registry depends on the
// backend's check; the pools and the admin server come after), not with
// the admin server, last.
func TestStartOrderIsTheDocumentedOne(t *testing.T) {
	t.Parallel()
	rec := &hookOrder{}
	app := fxtest.New(t, platform.Module(load(t), platform.Info{}),
		fx.WithLogger(func() fxevent.Logger { return rec }))
	app.RequireStart()
	app.RequireStop()
	started := map[string]int{
		"queue backend": rec.first(t, "lifecycle.(*Registry).Track"),
		"health checks": rec.first(t, "health.New"),
		"pools":         rec.first(t, "worker.newFxRuntime"),
		"admin server":  rec.first(t, "admin.New"),
	}

	doc, err := os.ReadFile("../docs/architecture.md")
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(doc), "| start (in order) | stop (reverse) |")
	require.True(t, ok, "the start and stop table")
	table, _, _ = strings.Cut(table, "\n\n")
	row := map[string]int{}
	for i, line := range strings.Split(table, "\n") {
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), "|")
		for part := range started {
			if _, seen := row[part]; !seen && strings.Contains(first, part) {
				row[part] = i
			}
		}
	}
	for a := range started {
		require.Contains(t, row, a, "the table's start column names the %s", a)
		for b := range started {
			if started[a] < started[b] {
				require.Less(t, row[a], row[b], "the %s start before the %s: the table lists them so", a, b)
			}
		}
	}
}
