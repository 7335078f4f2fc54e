package worker_test

import (
	"fmt"
	"testing"

	"github.com/plba/plba/internal/workerbench"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
)

var benchConcurrency = []int{1, 8, 64}

// BenchmarkRuntime measures no-op tasks through source → memory queue →
// pool → handler; see workerbench.
func BenchmarkRuntime(b *testing.B) {
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("backend=memory/concurrency=%d", c), func(b *testing.B) {
			workerbench.Runtime(b, func(testing.TB) queue.Backend {
				return memory.New(memory.Options{})
			}, workerbench.Options{Concurrency: c})
		})
	}
}

// BenchmarkChannelBaseline is the same work through a buffered channel and
// N goroutines: the limit BenchmarkRuntime is compared with.
func BenchmarkChannelBaseline(b *testing.B) {
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			workerbench.ChannelBaseline(b, workerbench.Options{Concurrency: c})
		})
	}
}

// BenchmarkLatency is enqueue-to-handler latency without queueing: one task
// at a time through source → memory queue → pool → handler.
func BenchmarkLatency(b *testing.B) {
	b.Run("backend=memory/concurrency=8", func(b *testing.B) {
		workerbench.Latency(b, func(testing.TB) queue.Backend {
			return memory.New(memory.Options{})
		}, workerbench.Options{Concurrency: 8})
	})
	b.Run("channel/concurrency=8", func(b *testing.B) {
		workerbench.ChannelLatency(b, workerbench.Options{Concurrency: 8})
	})
}
