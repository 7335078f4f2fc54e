package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

func load(t *testing.T, sets ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: append([]string{"admin.listen=127.0.0.1:0", "log.level=error"}, sets...)})
	require.NoError(t, err)
	return cfg
}

func TestModuleGraphIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, fx.ValidateApp(platform.Module(load(t), platform.Info{})))
}

func TestUnknownBackendIsAConfigError(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.Options{Environ: []string{}, Sets: []string{"queue.backend=kafka"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "queue.backend")
	require.Contains(t, err.Error(), "kafka")
}

// status fetches /admin/v1/status from the running server.
func status(t *testing.T, srv *admin.Server) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr() + "/admin/v1/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.Unmarshal(b, &st), string(b))
	return st
}

func componentStates(st map[string]any) map[string]string {
	out := map[string]string{}
	comps, _ := st["components"].([]any)
	for _, c := range comps {
		m := c.(map[string]any)
		out[m["name"].(string)] = m["state"].(string)
	}
	return out
}

// Every backend the "queue.backend" key names runs a task end to end in
// the host, and shows as a running component.
func TestBackends(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		backend string
		sets    []string
	}{
		{backend: "memory"},
		{backend: "jetstream", sets: []string{"queue.jetstream.embedded.store_dir=" + filepath.Join(t.TempDir(), "nats")}},
	} {
		t.Run(tt.backend, func(t *testing.T) {
			t.Parallel()
			done := make(chan string, 1)
			var (
				srv *admin.Server
				enq task.Enqueuer
				be  queue.Backend
			)
			app := fxtest.New(t,
				platform.Module(load(t, append(tt.sets, "queue.backend="+tt.backend)...), platform.Info{}),
				worker.SupplyRoute(task.Route{Kind: "echo", Queue: "echoes", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
					done <- string(tk.Payload)
					return nil
				})}),
				fx.Populate(&srv, &enq, &be),
			)
			app.RequireStart()
			defer app.RequireStop()
			require.NoError(t, enq.Enqueue(context.Background(), &task.Task{Kind: "echo", Payload: []byte("ping")}))
			select {
			case got := <-done:
				require.Equal(t, "ping", got)
			case <-time.After(20 * time.Second):
				t.Fatal("task not handled")
			}
			st := status(t, srv)
			states := componentStates(st)
			for _, c := range st["components"].([]any) {
				if m := c.(map[string]any); m["name"] == "queue/"+tt.backend {
					require.NotNil(t, m["details"], "the backend reports its details: %v", m)
				}
			}
			require.Equal(t, "running", states["queue/"+tt.backend], states)
			require.Equal(t, "running", states["pool/echoes"], states)
			require.Eventually(t, func() bool {
				s, err := be.Stats(context.Background(), "echoes")
				return err == nil && s.Ready == 0 && s.InFlight == 0
			}, 10*time.Second, 10*time.Millisecond, "the task was acked")
		})
	}
}
