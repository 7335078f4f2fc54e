package control_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/worker"
)

// A task the backend refuses as too large (JetStream: larger than the
// server's max_payload less the room its dead-letter copy needs) is the
// client's mistake: 413 naming why, audited as failed, nothing stored.
// It was answered 500, as if the server had failed.
func TestEnqueueOfATaskTooLargeIs413(t *testing.T) {
	t.Parallel()
	cfg := jetstreamConfig(t)
	cfg.Embedded.MaxPayload = 64 << 10
	b := openJetStream(t, cfg)
	e := newEnv(t, b, b.Overrides(), worker.PoolConfig{Concurrency: 1})
	payload := `"` + strings.Repeat("x", 100<<10) + `"`
	code, body := e.call("POST", control.Prefix+"/tasks", map[string]any{"kind": testKind, "key": "big", "payload": json.RawMessage(payload)}, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
	require.Contains(t, body, "too large")
	audit := e.auditOf("task.enqueue")
	require.Len(t, audit, 1)
	require.Equal(t, "failed", audit[0]["result"])
	st, err := b.Stats(t.Context(), testQueue)
	require.NoError(t, err)
	require.Zero(t, st.Ready+st.Delayed+st.InFlight, "nothing stored")
}
