// Package workerbench forwards to the platform's internal benchmark
// drivers (internal/workerbench) for the benchmarks not yet switched.
//
// Deprecated: the benchmark drivers are platform machinery, not API for
// applications; import github.com/plba/plba/internal/workerbench from
// inside the repository. This forwarder goes once its last user
// (platform/queue/jetstream's bench_test.go) has moved.
package workerbench

import (
	"testing"
	"time"

	"github.com/plba/plba/internal/workerbench"
	"github.com/plba/plba/platform/queue"
)

// Kind is internal/workerbench.Kind.
//
// Deprecated: use internal/workerbench.
const Kind = workerbench.Kind

// Options is internal/workerbench.Options.
//
// Deprecated: use internal/workerbench.
type Options = workerbench.Options

// Runtime is internal/workerbench.Runtime.
//
// Deprecated: use internal/workerbench.
func Runtime(b *testing.B, newBackend func(tb testing.TB) queue.Backend, o Options) {
	workerbench.Runtime(b, newBackend, o)
}

// ChannelBaseline is internal/workerbench.ChannelBaseline.
//
// Deprecated: use internal/workerbench.
func ChannelBaseline(b *testing.B, o Options) { workerbench.ChannelBaseline(b, o) }

// Latency is internal/workerbench.Latency.
//
// Deprecated: use internal/workerbench.
func Latency(b *testing.B, newBackend func(tb testing.TB) queue.Backend, o Options) {
	workerbench.Latency(b, newBackend, o)
}

// ChannelLatency is internal/workerbench.ChannelLatency.
//
// Deprecated: use internal/workerbench.
func ChannelLatency(b *testing.B, o Options) { workerbench.ChannelLatency(b, o) }

// OpenLoop is internal/workerbench.OpenLoop.
//
// Deprecated: use internal/workerbench.
func OpenLoop(b *testing.B, newBackend func(tb testing.TB) queue.Backend, o Options, rate float64) {
	workerbench.OpenLoop(b, newBackend, o, rate)
}

// CPUTime is internal/workerbench.CPUTime.
//
// Deprecated: use internal/workerbench.
func CPUTime() time.Duration { return workerbench.CPUTime() }
