package shipments

import (
	"net/url"
	"time"

	"github.com/plba/plba/platform/config"
)

// Section is the application's configuration section.
const Section = "shipments"

// Config is the "shipments" section.
type Config struct {
	// NotifyURL is the notification service's endpoint: every customer
	// message is POSTed to it as JSON. Required.
	NotifyURL string `koanf:"notify_url"`
	// HealthURL is GETed by the readiness check on the notification
	// service; any answer below 500 is healthy. Default: NotifyURL.
	HealthURL string `koanf:"health_url"`
	// Timeout bounds one call to the notification service. Default 5s.
	Timeout time.Duration `koanf:"timeout"`
	// FeedbackAfter is how long after the shipping notice the customer is
	// asked for feedback. Default 72h.
	FeedbackAfter time.Duration `koanf:"feedback_after"`
	// WebhookSecret is the secret the warehouse signs its events with:
	// each POST carries the header "Shipments-Signature: t=<unix
	// seconds>,v1=<hex>", the hex being the HMAC-SHA256 of "<t>.<body>"
	// (SignatureHeader, Sign). The webhook is a public route of the admin
	// server (no admin credentials), so an event without a valid
	// signature is refused with 401. Required; at least 16 bytes.
	WebhookSecret string `koanf:"webhook_secret" secret:"true"`
	// WebhookTolerance is how far an event's signed timestamp may be from
	// the server's clock, before or after: an older event (a captured
	// request replayed) is refused with 401. Keep it no longer than the
	// queue's de-duplication window (queue.memory.dedup_window and
	// queue.jetstream.duplicate_window, 2m by default: neither covers the
	// default tolerance), which drops a replay within it by the
	// shipment's key. Default 5m.
	WebhookTolerance time.Duration `koanf:"webhook_tolerance"`
	// WebhookEnqueueTimeout bounds the webhook's wait for room in the
	// queue (a bounded queue that is full blocks the enqueue): past it
	// the event is refused with 503 and Retry-After, and the warehouse
	// retries, instead of a request that hangs until room comes. Keep it
	// below admin.write_timeout (30s by default). Default 10s.
	WebhookEnqueueTimeout time.Duration `koanf:"webhook_enqueue_timeout"`
	// Digest sends a summary of the notices sent, on a schedule.
	Digest DigestConfig `koanf:"digest"`
	// DemoSink serves POST /shipments/v1/sink on the admin server, which
	// logs what it receives: point notify_url at it to try the app
	// without a notification service. Default false.
	DemoSink bool `koanf:"demo_sink"`
}

// DigestConfig is the "shipments.digest" part of the section.
type DigestConfig struct {
	// Enabled runs the scheduled digest. Default true.
	Enabled bool `koanf:"enabled"`
	// Every is the period of the digest: due at every multiple of it
	// since the Unix epoch (1h: on the hour, UTC). Default 1h.
	Every time.Duration `koanf:"every"`
	// Cron, when set, schedules the digest by a cron expression instead
	// of Every ("0 8 * * 1-5": 08:00 on weekdays), read in TimeZone.
	Cron string `koanf:"cron"`
	// TimeZone is the IANA zone Cron is read in ("Europe/Berlin").
	// Default UTC.
	TimeZone string `koanf:"time_zone"`
	// CatchUp sends, at start, the digest of the latest period that came
	// while no host ran the schedule (true), or waits for the next one
	// (false). Default true.
	CatchUp bool `koanf:"catch_up"`
	// To is who receives the digest. Default "ops@example.com".
	To string `koanf:"to"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Timeout:               5 * time.Second,
		FeedbackAfter:         72 * time.Hour,
		WebhookTolerance:      5 * time.Minute,
		WebhookEnqueueTimeout: 10 * time.Second,
		Digest:                DigestConfig{Enabled: true, Every: time.Hour, To: "ops@example.com", CatchUp: true},
	}
}

// Validate checks the section.
func (c Config) Validate() error {
	var ps config.Problems
	if c.NotifyURL == "" {
		ps.Add("notify_url", "must be set (the notification service's URL)")
	} else if u, err := url.Parse(c.NotifyURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add("notify_url", "must be an http(s) URL (got %q)", c.NotifyURL)
	}
	if c.HealthURL != "" {
		if u, err := url.Parse(c.HealthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.Add("health_url", "must be an http(s) URL (got %q)", c.HealthURL)
		}
	}
	if len(c.WebhookSecret) < 16 {
		ps.Add("webhook_secret", "must be set, at least 16 bytes (the warehouse signs its events with it)")
	}
	if c.WebhookTolerance <= 0 {
		ps.Add("webhook_tolerance", "must be positive (got %s)", c.WebhookTolerance)
	}
	if c.WebhookEnqueueTimeout <= 0 {
		ps.Add("webhook_enqueue_timeout", "must be positive (got %s)", c.WebhookEnqueueTimeout)
	}
	if c.Timeout <= 0 {
		ps.Add("timeout", "must be positive (got %s)", c.Timeout)
	}
	if c.FeedbackAfter < 0 {
		ps.Add("feedback_after", "must not be negative (got %s)", c.FeedbackAfter)
	}
	if c.Digest.Enabled && c.Digest.Cron == "" && c.Digest.Every < time.Minute {
		ps.Add("digest.every", "must be at least 1m (got %s)", c.Digest.Every)
	}
	if _, err := time.LoadLocation(c.Digest.TimeZone); err != nil {
		ps.Add("digest.time_zone", "unknown time zone %q", c.Digest.TimeZone)
	} else if c.Digest.Enabled {
		if _, err := c.Digest.schedule(); err != nil {
			ps.Add("digest.cron", "%v", err)
		}
	}
	return ps.Err()
}
