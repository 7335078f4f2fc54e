package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/telemetry"
	"github.com/plba/plba/platform/worker"
)

// Section names of the task runtime.
const (
	QueueSection     = "queue"
	JetStreamSection = "queue.jetstream"
	WorkersSection   = "workers"
	SourcesSection   = "sources"
	TelemetrySection = "telemetry"
)

// Queue backends the "queue.backend" key accepts.
const (
	BackendMemory    = "memory"
	BackendJetStream = "jetstream"
)

// The runtime's sections. Some of jetstream.Config's defaults are derived
// from other fields (the mode from the URLs), so its declared default holds
// only the others; its WithDefaults, which the configuration applies after
// decoding, makes the effective values (and `host config show` prints
// those).
var (
	queueSection     = config.Declare(QueueSection, DefaultQueueConfig())
	jetStreamSection = config.Declare(JetStreamSection, jetstream.DefaultConfig())
	workersSection   = config.Declare(WorkersSection, worker.DefaultConfig())
	sourcesSection   = config.Declare(SourcesSection, source.Config{}.WithDefaults())
	telemetrySection = config.Declare(TelemetrySection, telemetry.DefaultConfig())
)

// QueueConfig is the "queue" section: which backend holds the tasks. The
// JetStream backend's own settings are the "queue.jetstream" section.
type QueueConfig struct {
	// Backend is "memory" (fast, lost on crash) or "jetstream" (durable;
	// an embedded NATS server unless queue.jetstream.urls is set).
	// Default memory.
	Backend string `koanf:"backend"`
	// Memory configures the memory backend.
	Memory memory.Options `koanf:"memory"`
}

// DefaultQueueConfig returns the defaults documented on QueueConfig, the
// memory backend's included.
func DefaultQueueConfig() QueueConfig {
	return QueueConfig{Backend: BackendMemory, Memory: memory.Options{
		Capacity: memory.DefaultCapacity, MaxDead: memory.DefaultMaxDead, DefaultLease: memory.DefaultLease,
		DedupWindow: memory.DefaultDedupWindow, MaxFinishedKeys: memory.DefaultMaxFinishedKeys,
	}}
}

// Validate checks the section.
func (c QueueConfig) Validate() error {
	var ps config.Problems
	if c.Backend != BackendMemory && c.Backend != BackendJetStream {
		ps.Add("backend", "must be %q or %q (got %q)", BackendMemory, BackendJetStream, c.Backend)
	}
	// Each problem of memory.Options ("capacity: must not be ...") at its
	// own key, so that each names its key and source.
	var joined interface{ Unwrap() []error }
	if err := c.Memory.Validate(); errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			key, msg, _ := strings.Cut(e.Error(), ": ")
			ps.Add("memory."+key, "%s", msg)
		}
	} else if err != nil {
		ps.Add("memory", "%v", err)
	}
	return ps.Err()
}

// backendParams are newBackend's inputs.
type backendParams struct {
	fx.In

	Lifecycle  fx.Lifecycle
	Queue      QueueConfig
	JetStream  jetstream.Config
	Sources    source.Config
	Log        *zap.Logger
	Components *lifecycle.Registry
}

// backendResult is the backend and, for backends that can tell, the
// readiness check on it.
type backendResult struct {
	fx.Out

	Backend queue.Backend
	// Overrides keeps the pools' run-time overrides: in the JetStream KV
	// (durable), or in memory with the memory backend.
	Overrides queue.OverrideStore
	Checks    []health.Check `group:"health.checks,flatten"`
}

// newBackend builds the configured queue backend as the component
// "queue/<backend>": it starts before the pools (which depend on it) and
// closes after they drained (fx stops in reverse order).
func newBackend(p backendParams) (backendResult, error) {
	name := "queue/" + p.Queue.Backend
	switch p.Queue.Backend {
	case BackendJetStream:
		b, err := jetstream.New(jetstream.Params{Config: p.JetStream, Logger: p.Log.Named("jetstream")})
		if err != nil {
			return backendResult{}, fmt.Errorf("queue.jetstream: %w", err)
		}
		start := func(ctx context.Context) error { return startJetStream(ctx, b, p.Sources.WithDefaults().Lease) }
		comp, err := p.Components.Track(p.Lifecycle, name, lifecycle.StopHost, start, b.Close, lifecycle.NeverFails())
		if err != nil {
			return backendResult{}, err
		}
		comp.SetDetails(func() any { return b.Status() }) // connection state, server, reconnects
		return backendResult{Backend: b, Overrides: b.Overrides(), Checks: []health.Check{b.HealthCheck()}}, nil
	default:
		b := memory.New(p.Queue.Memory)
		comp, err := p.Components.Track(p.Lifecycle, name, lifecycle.StopHost, nil, b.Close, lifecycle.NeverFails())
		if err != nil {
			return backendResult{}, err
		}
		comp.SetDetails(func() any { return memoryStats(b) })
		return backendResult{Backend: b, Overrides: &queue.MemoryOverrides{}}, nil
	}
}

// poolStats feeds telemetry's pool gauges from the runtime. It is bound
// after the runtime is built: the runtime depends on telemetry's observer,
// so telemetry cannot depend on the runtime directly.
type poolStats struct {
	rt atomic.Pointer[worker.Runtime]
}

// PoolStats returns the size, busy workers and failure counts of every
// pool; none before the runtime is bound.
func (s *poolStats) PoolStats() []telemetry.PoolStats {
	rt := s.rt.Load()
	if rt == nil {
		return nil
	}
	pools := rt.Pools()
	out := make([]telemetry.PoolStats, 0, len(pools))
	for _, p := range pools {
		st := p.Stats()
		sf := st.SettleFailed
		out = append(out, telemetry.PoolStats{Queue: p.Queue(), Size: st.Workers, Busy: int(st.InFlight),
			SettleFailed: map[string]int64{
				worker.OpAck: sf.Ack, worker.OpRetry: sf.Retry, worker.OpDeadLetter: sf.DeadLetter, worker.OpRelease: sf.Release,
			},
			CompletionFailed: st.CompletionFailed})
	}
	return out
}

// taskRuntime wires the task runtime: the queue backend, telemetry (spans,
// metrics, /metrics), the producer, the pools and the source supervisor.
func taskRuntime() fx.Option {
	ps := &poolStats{}
	return fx.Options(
		queueSection.Provide(),
		jetStreamSection.Provide(),
		workersSection.Provide(),
		sourcesSection.Provide(),
		telemetrySection.Provide(),
		fx.Provide(
			newBackend,
			newLeases,
			newLeaseChecks,
			func(b queue.Backend) telemetry.QueueStatser { return telemetry.BackendStats(b) },
			func() telemetry.PoolStatser { return ps },
		),
		telemetry.Module,
		worker.Module,
		control.Module,
		fx.Invoke(func(rt *worker.Runtime) { ps.rt.Store(rt) }),
		fx.Invoke(checkQueues),
	)
}

// memoryStats lists the counts of every queue of the memory backend (cheap:
// it only reads the backend's own state), for the status page.
func memoryStats(b *memory.Backend) []queue.Stats {
	ctx := context.Background()
	names, err := b.Queues(ctx)
	if err != nil {
		return nil
	}
	out := make([]queue.Stats, 0, len(names))
	for _, n := range names {
		if st, err := b.Stats(ctx, n); err == nil {
			out = append(out, st)
		}
	}
	return out
}
