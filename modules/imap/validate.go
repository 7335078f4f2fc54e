package imap

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/plba/plba/platform/config"
)

// ErrInvalidConfig is matched (errors.Is) by every error Validate returns.
var ErrInvalidConfig = errors.New("imap: invalid config")

// ConfigError is one problem Validate found: the key (its path under the
// source's configuration section) and what is wrong.
type ConfigError struct {
	Key string
	Msg string
}

// Error returns "imap: invalid config: <key>: <msg>".
func (e *ConfigError) Error() string { return ErrInvalidConfig.Error() + ": " + e.Key + ": " + e.Msg }

// Is makes every ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// As makes a ConfigError a config.Problem at its key, so that the
// configuration's loader reports it under the section ("imap.port: ...").
func (e *ConfigError) As(target any) bool {
	p, ok := target.(*config.Problem)
	if ok {
		*p = config.Problem{Key: e.Key, Msg: e.Msg}
	}
	return ok
}

// Validate checks the configuration as WithDefaults completes it (an
// unset field is checked at its default). Every problem is reported as a
// *ConfigError (its key path under the source's section), joined into one
// error; each matches ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Host == "" {
		bad("host", "required")
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port", "%d is not a TCP port", c.Port)
	}
	switch c.TLS {
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !c.AllowInsecure && c.Host != "" && !isLoopback(c.Host) {
			bad("tls", `"none" sends the password in clear text: only allowed for a loopback host unless allow_insecure is true (host %q)`, c.Host)
		}
	default:
		bad("tls", `%q is not one of "tls", "starttls", "none"`, c.TLS)
	}
	if c.Username == "" {
		bad("username", "required")
	}
	if c.Password == "" {
		bad("password", "required")
	}
	if c.Mailbox == "" {
		bad("mailbox", "required")
	}
	if c.Name == "" {
		bad("name", "required")
	}
	switch c.Mode {
	case ModePoll, ModeIdle:
	default:
		bad("mode", `%q is not one of "poll", "idle"`, c.Mode)
	}
	if c.PollInterval <= 0 {
		bad("poll_interval", "must be positive, got %s", c.PollInterval)
	}
	if c.IdleRenew <= 0 || c.IdleRenew >= MaxIdleRenew {
		bad("idle_renew", "must be positive and below %s, got %s", MaxIdleRenew, c.IdleRenew)
	}
	if c.Reconcile <= 0 {
		bad("reconcile", "must be positive, got %s", c.Reconcile)
	}
	if c.BatchSize < 1 {
		bad("batch_size", "must be at least 1, got %d", c.BatchSize)
	}
	if c.MaxMessageSize < 1 {
		bad("max_message_size", "must be positive, got %d", c.MaxMessageSize)
	}
	if c.MaxBatchBytes < 1 {
		bad("max_batch_bytes", "must be positive, got %d", c.MaxBatchBytes)
	}
	if c.Kind == "" {
		bad("kind", "required (the task kind the app handles)")
	}
	if !*c.OnSuccess.Seen && *c.OnSuccess.MoveTo == "" {
		bad("on_success", "either seen or move_to is needed: otherwise processed mail cannot be told from new mail after a restart")
	}
	if *c.OnSuccess.MoveTo != "" && strings.EqualFold(*c.OnSuccess.MoveTo, c.Mailbox) {
		bad("on_success.move_to", "must differ from mailbox %q", c.Mailbox)
	}
	if *c.OnFailure.MoveTo != "" && strings.EqualFold(*c.OnFailure.MoveTo, c.Mailbox) {
		bad("on_failure.move_to", "must differ from mailbox %q", c.Mailbox)
	}
	if c.Reconnect.Initial <= 0 {
		bad("reconnect.initial", "must be positive, got %s", c.Reconnect.Initial)
	}
	if c.Reconnect.Max > MaxReconnectDelay {
		bad("reconnect.max", "must be at most %s, got %s", MaxReconnectDelay, c.Reconnect.Max)
	} else if c.Reconnect.Max < c.Reconnect.Initial {
		bad("reconnect.max", "must be at least reconnect.initial (%s), got %s", c.Reconnect.Initial, c.Reconnect.Max)
	}
	if c.DialTimeout <= 0 {
		bad("dial_timeout", "must be positive, got %s", c.DialTimeout)
	}
	if c.CommandTimeout <= 0 {
		bad("command_timeout", "must be positive, got %s", c.CommandTimeout)
	}
	if c.InFlightTimeout <= 0 {
		bad("inflight_timeout", "must be positive, got %s", c.InFlightTimeout)
	}
	if c.RefusalSpan < 0 {
		bad("refusal_span", "must not be negative, got %s", c.RefusalSpan)
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host is "localhost" or a loopback IP. It does
// not resolve names: a name that merely resolves to loopback is not trusted.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
