package platform_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
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

// On the memory backend with the host's defaults, a task key whose task
// finished is refused for the default de-duplication window: enqueuing
// it again through the operator API answers 409 "already finished" and
// runs nothing, as the README says (with a window of 0s the key was
// forgotten at the ack: 201, and the task ran twice).
func TestMemoryBackendRefusesAFinishedKeyByDefault(t *testing.T) {
	t.Parallel()
	const tok = "operator-token-0123456789"
	f := filepath.Join(t.TempDir(), "host.yaml")
	require.NoError(t, os.WriteFile(f, []byte("admin:\n  listen: 127.0.0.1:0\n  auth:\n    tokens:\n      - {name: ci, role: operator, token: "+tok+"}\nlog:\n  level: error\n"), 0o600))
	cfg, err := config.Load(config.Options{Files: []string{f}, Environ: []string{}})
	require.NoError(t, err)
	ran := make(chan string, 4)
	var srv *admin.Server
	var be queue.Backend
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}),
		worker.SupplyRoute(task.Route{Kind: "order", Queue: "orders", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			ran <- tk.Key
			return nil
		})}),
		fx.Populate(&srv, &be))
	app.RequireStart()
	defer app.RequireStop()

	post := func() (int, string) {
		req, err := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+"/admin/v1/tasks",
			bytes.NewReader([]byte(`{"kind":"order","key":"order-1","payload":{"n":1}}`)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := post()
	require.Equal(t, http.StatusCreated, code, body)
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the task did not run")
	}
	require.Eventually(t, func() bool { // acked: nothing live on the queue
		st, err := be.Stats(context.Background(), "orders")
		return err == nil && st.Ready+st.Delayed+st.InFlight+st.Dead == 0
	}, 30*time.Second, 20*time.Millisecond)

	code, body = post()
	require.Equal(t, http.StatusConflict, code, "a finished task's key enqueued again: %s", body)
	require.Contains(t, body, "already finished")
	select {
	case k := <-ran:
		t.Fatalf("the task of key %s ran again", k)
	case <-time.After(200 * time.Millisecond):
	}
}
