package jetstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/config"
)

// serverURL names the server nc is connected to (password redacted), or
// "in-process" for an embedded server without a network listener.
func (b *Backend) serverURL(nc *nats.Conn) string {
	if b.srv != nil && b.srv.ClientURL() == "" {
		return "in-process"
	}
	if u := nc.ConnectedUrlRedacted(); u != "" {
		return u
	}
	return "in-process"
}

// redactedErr is err with the user information of the URLs its text
// quotes redacted (nats.go's parse errors quote the URL it was given).
type redactedErr struct{ err error }

func (e redactedErr) Error() string { return config.RedactURLsIn(e.err.Error()) }
func (e redactedErr) Unwrap() error { return e.err }

// redactURLs hides the user information (passwords, tokens) of URLs for
// error messages.
func redactURLs(s string) string {
	if s == "" {
		return "in-process server"
	}
	return config.RedactUserinfo(s)
}

func (b *Backend) natsOptions() ([]nats.Option, error) {
	c := b.cfg
	opts := []nats.Option{
		nats.Name(c.ConnectionName),
		// Synchronous subscriptions are only the batched key lookups
		// (done.go), answered by at most maxLastFor messages and an end
		// marker: a channel of that size instead of nats.go's 64Ki
		// (512 KiB allocated per lookup).
		nats.SyncQueueLen(maxLastFor + 16),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			b.smu.Lock()
			b.disconnects++
			if err != nil {
				b.lastErr, b.lastErrAt = err.Error(), time.Now()
			}
			b.smu.Unlock()
			if b.isClosing() {
				b.log.Debug("jetstream: disconnected on close", zap.Error(err))
				return
			}
			b.log.Warn("jetstream: disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.smu.Lock()
			b.reconnects++
			b.smu.Unlock()
			b.log.Info("jetstream: reconnected", zap.String("server", nc.ConnectedUrlRedacted()))
			b.pokePullers() // pull requests died with the old connection
			b.askRestore()  // a new server may lack the streams (restore.go)
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			b.recordErr(err)
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Warn("jetstream: async error", zap.String("subject", subj), zap.Error(err))
		}),
	}
	if c.User != "" || c.Password != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.Creds != "" {
		o, err := credsOption([]byte(c.Creds))
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if c.NKeySeed != "" {
		o, err := nkeyOption([]byte(c.NKeySeed))
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if c.TLS.enabled() {
		if c.TLS.CAFile != "" {
			opts = append(opts, nats.RootCAs(c.TLS.CAFile))
		}
		if c.TLS.CertFile != "" {
			opts = append(opts, nats.ClientCert(c.TLS.CertFile, c.TLS.KeyFile))
		}
		if c.TLS.InsecureSkipVerify {
			opts = append(opts, nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})) //nolint:gosec // explicit opt-in
		} else {
			opts = append(opts, nats.Secure())
		}
	}
	return opts, nil
}

// serverAtLeast reports whether version ("2.10.4") is at least major.minor.
func serverAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// reconnectDelay backs off exponentially from 100ms to 5s, with jitter so
// that replicas do not reconnect in lock step.
func reconnectDelay(attempts int) time.Duration {
	d := 100 * time.Millisecond << min(attempts, 6)
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// whileConnected returns a context that ends with ctx or as soon as the
// connection to the server is lost (at once when it is not connected),
// for the give-backs of Release and Close: during an outage they cannot
// succeed, and waiting for ctx would hold a stopping pool or host for all
// of it. Call stop when done; it releases the status listener and its
// goroutine.
func (b *Backend) whileConnected(ctx context.Context) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	lost := b.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case _, ok := <-lost:
			if ok {
				cancel(errNotConnected)
			}
		case <-cctx.Done():
		}
	}()
	if !b.nc.IsConnected() {
		cancel(errNotConnected)
	}
	return cctx, func() {
		cancel(nil)
		b.nc.RemoveStatusListener(lost)
		<-watched
	}
}

// errNotConnected ends the context of whileConnected.
var errNotConnected = errors.New("jetstream: not connected to the server")
