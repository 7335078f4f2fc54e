package shipments

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.ErrorContains(t, c.Validate(), "notify_url: must be set")
	c.NotifyURL = "ftp://x"
	require.ErrorContains(t, c.Validate(), `notify_url: must be an http(s) URL (got "ftp://x")`)
	c.NotifyURL = "http://127.0.0.1:9/notify"
	require.ErrorContains(t, c.Validate(), "webhook_secret: must be set")
	c.WebhookSecret = "short"
	require.ErrorContains(t, c.Validate(), "webhook_secret: must be set, at least 16 bytes")
	c.WebhookSecret = "0123456789abcdef"
	require.NoError(t, c.Validate())
	c.Digest.Every = time.Second
	require.ErrorContains(t, c.Validate(), "digest.every: must be at least 1m")
}

// The readiness check: an answer below 500 is healthy; a 5xx or no
// answer is not.
func TestNotifierCheck(t *testing.T) {
	status := http.StatusNotFound
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	n := NewNotifier(Config{NotifyURL: srv.URL, Timeout: 5 * time.Second})
	ctx := context.Background()
	require.NoError(t, n.Check(ctx))
	status = http.StatusBadGateway
	require.ErrorContains(t, n.Check(ctx), "502")
	srv.Close()
	require.ErrorContains(t, n.Check(ctx), "notification service")
}
