package jetstream

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/queue"
)

// Status describes the connection, for the admin plane.
type Status struct {
	// Connected is true while the connection is up.
	Connected bool `json:"connected"`
	// State is the connection state: CONNECTED, RECONNECTING, CLOSED, ...
	// ("" before Start).
	State string `json:"state"`
	// ServerURL is the server connected to (redacted; "in-process" for an
	// embedded server without listener).
	ServerURL string `json:"server_url"`
	// ServerVersion is the connected server's version ("2.12.1").
	ServerVersion string `json:"server_version"`
	// Schedules says whether the server stores NotBefore tasks as message
	// schedules (2.12 and later); see Enqueue.
	Schedules bool `json:"schedules"`
	// Reconnects and Disconnects count connection events since Start;
	// LastError is the last connection or asynchronous error.
	// DeadDiscarded counts the dead letters this process discarded
	// because the dead-letter stream was full (Config.Dead), of all
	// queues: Stats has each queue's (those it could not read before
	// deleting them, or whose subject names no queue, are only here).
	// ClaimsLost counts this process's settlements that did not happen
	// because another delivery of the same message, made while it ran
	// (the server delivered it twice at once), was settled first (see
	// claim.go).
	DeadDiscarded uint64    `json:"dead_discarded"`
	ClaimsLost    uint64    `json:"claims_lost"`
	Reconnects    uint64    `json:"reconnects"`
	Disconnects   uint64    `json:"disconnects"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
}

func (b *Backend) recordErr(err error) {
	if err == nil {
		return
	}
	b.smu.Lock()
	b.lastErr, b.lastErrAt = err.Error(), time.Now()
	b.smu.Unlock()
}

// Status returns the connection's state and counters.
func (b *Backend) Status() Status {
	b.smu.Lock()
	s := Status{Reconnects: b.reconnects, Disconnects: b.disconnects, LastError: b.lastErr, LastErrorAt: b.lastErrAt,
		DeadDiscarded: b.deadDiscarded.Load(), ClaimsLost: b.claimsLost.Load()}
	b.smu.Unlock()
	if nc := b.nc; nc != nil && b.started.Load() {
		s.Connected = nc.IsConnected()
		s.State = nc.Status().String()
		s.ServerVersion = nc.ConnectedServerVersion()
		s.Schedules = b.schedules
		s.ServerURL = b.serverURL(nc)
	}
	return s
}

// MaxPayload returns the largest message the connected server accepts
// (0 before Start). A task's payload and headers must fit in it, less
// 4.5 KiB kept for the headers of a dead-letter copy (Enqueue refuses
// larger tasks).
func (b *Backend) MaxPayload() int64 {
	if !b.started.Load() {
		return 0
	}
	return b.nc.MaxPayload()
}

// Check reports whether the connection is up, JetStream answers and the
// work stream of every queue this process has set up answers with a
// leader (checkQueues); it is meant for a readiness check.
func (b *Backend) Check(ctx context.Context) error {
	if !b.started.Load() {
		return ErrNotStarted
	}
	if b.isClosing() {
		return queue.ErrClosed
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w: connection %s", ErrUnreachable, b.nc.Status())
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: jetstream account info: %w", ErrUnreachable, err)
	}
	return b.checkQueues(ctx)
}

// HealthCheck returns Check as a gating readiness check named
// "queue.jetstream", for the health registry.
func (b *Backend) HealthCheck() health.Check {
	return health.Check{Name: "queue.jetstream", Func: b.Check, Gating: true}
}
