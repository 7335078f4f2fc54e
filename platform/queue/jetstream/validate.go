package jetstream

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// PrefetchLimit bounds Prefetch and MaxPrefetch: a pull asks for up to
// MaxPrefetch messages at once, and the client makes a buffer of that
// size for them (a prefetch of 1<<62 made the host panic at its first
// pull). The server delivers no more than MaxAckPending (default 10000)
// anyway.
const PrefetchLimit = 100_000

// MinDuplicateWindow and MinTimeout are the shortest duplicate_window,
// publish_timeout and connect_timeout Validate accepts: a window of a
// nanosecond de-duplicates nothing, and a timeout of one fails every
// publish or connect with an outcome it never waited for.
const (
	MinDuplicateWindow = time.Second
	MinTimeout         = 10 * time.Millisecond
)

// ErrInvalidConfig wraps every Validate failure.
var ErrInvalidConfig = errors.New("jetstream: invalid config")

// Validate reports every invalid field of c (after defaults), each as a
// problem at its key that matches ErrInvalidConfig, joined into one error.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.InvalidAs(ErrInvalidConfig, key, format, args...))
	}
	switch c.Mode {
	case ModeEmbedded:
		if len(c.servers()) > 0 {
			bad("mode", "%q, but url/urls are set", c.Mode)
		}
		if c.Sync != "" && c.Sync != embedded.SyncInterval && c.Sync != embedded.SyncAlways {
			bad("sync", "%q: want %q or %q", c.Sync, embedded.SyncInterval, embedded.SyncAlways)
		}
		if err := c.Embedded.Validate(); err != nil {
			// Each "key: problem" at embedded.key.
			all := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				all = j.Unwrap()
			}
			for _, e := range all {
				key, msg, _ := strings.Cut(e.Error(), ": ")
				bad("embedded."+key, "%s", msg)
			}
		}
		if c.Replicas != 1 {
			bad("replicas", "%d: an embedded server has one replica", c.Replicas)
		}
	case ModeExternal:
		if len(c.servers()) == 0 {
			bad("urls", "mode %q needs url or urls", c.Mode)
		}
		errs = append(errs, c.checkURLs()...)
		if c.Sync != "" && c.Sync != embedded.SyncInterval {
			bad("sync", "%q: external servers sync as their own configuration says (sync_interval: always)", c.Sync)
		}
	default:
		bad("mode", "%q: want %q or %q", c.Mode, ModeEmbedded, ModeExternal)
	}
	auth := 0
	if c.User != "" || c.Password != "" {
		auth++
	}
	for _, s := range []string{c.Token, c.NKeySeed, c.Creds} {
		if s != "" {
			auth++
		}
	}
	if auth > 1 {
		bad("", "choose one of user/password, token, nkey_seed, creds")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	if c.Mode != ModeEmbedded && c.Replicas != 1 && c.Replicas != 3 {
		bad("replicas", "%d: want 1 or 3", c.Replicas)
	}
	if c.Storage != StorageFile && c.Storage != StorageMemory {
		bad("storage", "%q: want %q or %q", c.Storage, StorageFile, StorageMemory)
	}
	if c.DuplicateWindow < MinDuplicateWindow {
		// The window is what makes an Enqueue sent again after an
		// unanswered publish store its task once: one shorter than the
		// time a retry takes stores it twice.
		bad("duplicate_window", "%s: want at least %s", c.DuplicateWindow, MinDuplicateWindow)
	}
	if c.MaxDeliver < -1 {
		bad("max_deliver", "%d: want -1 (unlimited) or > 0", c.MaxDeliver)
	}
	if c.AckWait < time.Millisecond*10 {
		bad("ack_wait", "%s: want at least 10ms", c.AckWait)
	}
	if c.StreamPrefix != encodeToken(c.StreamPrefix) {
		bad("stream_prefix", "%q: only letters, digits and '-'", c.StreamPrefix)
	}
	if c.Consumer != encodeToken(c.Consumer) {
		bad("consumer", "%q: only letters, digits and '-'", c.Consumer)
	}
	for _, f := range []struct {
		key string
		n   int
	}{{"prefetch", c.Prefetch}, {"max_ack_pending", c.MaxAckPending}, {"max_async_pending", c.MaxAsyncPending}} {
		if f.n < 1 {
			bad(f.key, "%d: must be positive", f.n)
		}
	}
	if c.Prefetch > PrefetchLimit {
		bad("prefetch", "%d: want at most %d", c.Prefetch, PrefetchLimit)
	}
	if c.MaxPrefetch > PrefetchLimit {
		bad("max_prefetch", "%d: want at most %d", c.MaxPrefetch, PrefetchLimit)
	}
	if c.MaxPrefetch < c.Prefetch {
		bad("max_prefetch", "%d is below prefetch (%d)", c.MaxPrefetch, c.Prefetch)
	}
	if c.PublishTimeout < MinTimeout {
		bad("publish_timeout", "%s: want at least %s", c.PublishTimeout, MinTimeout)
	}
	if c.ConnectTimeout < MinTimeout {
		bad("connect_timeout", "%s: want at least %s", c.ConnectTimeout, MinTimeout)
	}
	if c.MaxMsgs < 0 {
		bad("max_msgs", "%d: want 0 (no bound) or more", c.MaxMsgs)
	}
	if c.MaxBytes < 0 {
		bad("max_bytes", "%d: want 0 (no bound) or more", c.MaxBytes)
	}
	if c.Dead.MaxAge < time.Minute {
		bad("dead.max_age", "%s: want at least 1m", c.Dead.MaxAge)
	}
	if c.Dead.MaxBytes < -1 || c.Dead.MaxBytes > 0 && c.Dead.MaxBytes < 1<<20 {
		bad("dead.max_bytes", "%d: want -1 (no bound) or at least 1048576 (1 MiB)", c.Dead.MaxBytes)
	}
	if c.Dead.MaxMsgs < -1 {
		bad("dead.max_msgs", "%d: want -1 (no bound) or more than 0", c.Dead.MaxMsgs)
	}
	return errors.Join(errs...)
}

// checkURLs parses every server URL as the NATS client will (a URL
// without a scheme gets "nats://"), so that a malformed one fails
// validation naming its key instead of the first connection.
func (c Config) checkURLs() []error {
	var errs []error
	check := func(key, list string) {
		for _, raw := range strings.Split(list, ",") {
			if raw = strings.TrimSpace(raw); raw == "" {
				continue
			}
			if err := checkURL(raw); err != nil {
				errs = append(errs, config.InvalidAs(ErrInvalidConfig, key, "%s", config.RedactURLsIn(err.Error())))
			}
		}
	}
	check("url", c.URL)
	for i, u := range c.URLs {
		check(fmt.Sprintf("urls[%d]", i), u)
	}
	return errs
}

// natsSchemes are the URL schemes the NATS client connects with.
var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// checkURL reports why raw is not a server URL the client can use.
func checkURL(raw string) error {
	s := raw
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, errors.Unwrap(err))
	}
	if !natsSchemes[strings.ToLower(u.Scheme)] {
		return fmt.Errorf("%q: scheme %q: want nats, tls, ws or wss", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q out of range", raw, p)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: a server URL has no path, query or fragment", raw)
	}
	return nil
}
