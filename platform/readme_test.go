package platform_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// The module example in README.md is the code of Example, so it compiles
// and runs; this keeps the two the same.
func TestREADMEExampleIsTheExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	r := string(readme)
	start := strings.Index(r, "<!-- example:start -->\n```go\n")
	end := strings.Index(r, "```\n<!-- example:end -->")
	require.True(t, start >= 0 && end > start, "README example markers")
	snippet := r[start+len("<!-- example:start -->\n```go\n") : end]
	require.Contains(t, string(src), snippet, "README's example differs from Example in platform/example_test.go")
	require.GreaterOrEqual(t, strings.Count(snippet, "\n"), 20)
}

// Every plba metric a host exposes on /metrics is in README's metrics
// table.
func TestREADMEListsEveryMetric(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)

	handled := make(chan struct{}, 4)
	var srv *admin.Server
	var enq task.Enqueuer
	app := fxtest.New(t,
		platform.Module(load(t), platform.Info{}),
		worker.SupplyRoute(task.Route{Kind: "ok", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			handled <- struct{}{}
			return nil
		})}),
		worker.SupplyRoute(task.Route{Kind: "bad", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			handled <- struct{}{}
			return task.Permanent(errors.New("bad"))
		})}),
		fx.Provide(source.AsSource(func() *source.Poller {
			return source.Poll("once", time.Hour, 0, func(ctx context.Context, emit source.Emitter) error {
				return emit.Emit(ctx, &task.Task{Kind: "ok"})
			})
		})),
		fx.Populate(&srv, &enq),
	)
	app.RequireStart()
	defer app.RequireStop()
	require.NoError(t, enq.Enqueue(context.Background(), &task.Task{Kind: "bad"}))
	for range 2 {
		<-handled
	}
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			if strings.HasPrefix(name, "plba_") {
				names[name] = true
			}
		}
	}
	require.GreaterOrEqual(t, len(names), 10, "the host exposes its metrics")
	for name := range names {
		require.True(t, strings.Contains(string(readme), "`"+name+"`"), "README's metrics table lacks %s", name)
	}
}
