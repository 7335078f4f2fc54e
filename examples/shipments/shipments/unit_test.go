package shipments

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/source"
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
	c.Digest.Cron, c.Digest.TimeZone = "0 8 * * 1-5", "Europe/Berlin"
	require.NoError(t, c.Validate(), "a cron expression replaces every")
	c.Digest.TimeZone = "Mars/Olympus"
	require.ErrorContains(t, c.Validate(), `digest.time_zone: unknown time zone "Mars/Olympus"`)
	c.Digest.TimeZone, c.Digest.Cron = "", "61 * * * *"
	require.ErrorContains(t, c.Validate(), "digest.cron")
}

// A cron digest is due at the expression's times in its time zone.
func TestDigestCronInTimeZone(t *testing.T) {
	s, err := DigestConfig{Enabled: true, Cron: "0 8 * * *", TimeZone: "Europe/Berlin"}.schedule()
	require.NoError(t, err)
	require.Equal(t, "shipments/digest", s.Name())
	require.True(t, s.Exclusive(), "one host runs it at a time")
	d := s.Details().(source.ScheduleDetails)
	require.Equal(t, "Europe/Berlin", d.Location)
	require.Equal(t, "0 8 * * *", d.Schedule)
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
