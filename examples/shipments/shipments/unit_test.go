package shipments

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
	c.WebhookTolerance = 0
	require.ErrorContains(t, c.Validate(), "webhook_tolerance: must be positive")
	c.WebhookTolerance = time.Minute
	c.WebhookEnqueueTimeout = 0
	require.ErrorContains(t, c.Validate(), "webhook_enqueue_timeout: must be positive")
	c.WebhookEnqueueTimeout = time.Second
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

// VerifySignature accepts the signature of the timestamp and the body
// under the secret (any of several v1, as while a secret is rotated)
// within the tolerance, before or after; it refuses, saying why, a
// missing or malformed header, another secret, a changed body or
// timestamp, and a timestamp outside the tolerance.
func TestVerifySignature(t *testing.T) {
	const sec, other = "0123456789abcdef", "fedcba9876543210"
	body := []byte(`{"shipment":"s-1"}`)
	now := time.Unix(1_780_000_000, 0)
	good := Sign(sec, now, body)
	ts, v1, _ := strings.Cut(strings.TrimPrefix(good, "t="), ",v1=")
	require.Equal(t, fmt.Sprint(now.Unix()), ts)
	mine := v1
	theirs := strings.TrimPrefix(Sign(other, now, body), "t="+ts+",v1=")
	for _, tc := range []struct {
		name, header string
		body         []byte
		now          time.Time
		want         error
	}{
		{"signed now", good, body, now, nil},
		{"4m59s old", good, body, now.Add(4*time.Minute + 59*time.Second), nil},
		{"4m59s ahead", good, body, now.Add(-4*time.Minute - 59*time.Second), nil},
		{"two v1, the second ours", "t=" + ts + ",v1=" + theirs + ",v1=" + mine, body, now, nil},
		{"unknown keys ignored", "t=" + ts + ",v0=abc,v1=" + mine, body, now, nil},
		{"spaces", "t=" + ts + ", v1=" + mine, body, now, nil},
		{"5m1s old", good, body, now.Add(5*time.Minute + time.Second), ErrStaleSignature},
		{"5m1s ahead", good, body, now.Add(-5*time.Minute - time.Second), ErrStaleSignature},
		{"no header", "", body, now, ErrNoSignature},
		{"the old form", "sha256=" + mine, body, now, ErrMalformedSignature},
		{"no timestamp", "v1=" + mine, body, now, ErrMalformedSignature},
		{"no v1", "t=" + ts, body, now, ErrMalformedSignature},
		{"two timestamps", "t=" + ts + ",t=" + ts + ",v1=" + mine, body, now, ErrMalformedSignature},
		{"timestamp not a number", "t=soon,v1=" + mine, body, now, ErrMalformedSignature},
		{"short v1", "t=" + ts + ",v1=abcd", body, now, ErrMalformedSignature},
		{"another secret", "t=" + ts + ",v1=" + theirs, body, now, ErrSignatureMismatch},
		{"body changed", good, []byte(`{"shipment":"s-2"}`), now, ErrSignatureMismatch},
		{"timestamp changed", "t=" + fmt.Sprint(now.Unix()+60) + ",v1=" + mine, body, now, ErrSignatureMismatch},
	} {
		err := VerifySignature(sec, tc.header, tc.body, tc.now, 5*time.Minute)
		if tc.want == nil {
			require.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, tc.want, tc.name)
		require.NotContains(t, err.Error(), sec, tc.name)
		require.NotContains(t, err.Error(), mine, tc.name)
	}
	err := VerifySignature(sec, good, body, now.Add(10*time.Minute), 5*time.Minute)
	require.EqualError(t, err, SignatureHeader+": timestamp outside the tolerance: signed at "+
		now.UTC().Format(time.RFC3339)+", 10m0s old, beyond 5m0s (a replayed request, or the sender's clock is off)")
}

// The replay memory forgets signatures whose tolerance has passed once it
// holds pruneAt of them.
func TestReplaysForgetExpired(t *testing.T) {
	r := newReplays()
	now := time.Now()
	for i := range pruneAt {
		r.add([]byte(fmt.Sprint("old", i)), Answer{Task: "t"}, now.Add(-time.Second), now)
	}
	_, c := r.claim([]byte("old0"), now)
	require.Equal(t, claimMine, c, "expired")
	r.release([]byte("old0"))
	r.add([]byte("new"), Answer{Task: "t-new"}, now.Add(time.Minute), now)
	require.Len(t, r.sigs, 1)
	a, c := r.claim([]byte("new"), now)
	require.Equal(t, claimSeen, c)
	require.Equal(t, Answer{Task: "t-new"}, a)
	require.Empty(t, r.busy)
}
