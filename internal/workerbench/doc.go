// Package workerbench holds the task runtime's end-to-end benchmarks as
// exported helpers, so every queue backend measures the same work: no-op
// tasks flow source → backend → worker pool → handler, and the result is
// reported as tasks/s and enqueue-to-handler latency percentiles beside
// Go's ns/op and allocs/op (one op is one task).
//
// A backend's benchmark calls Runtime with its own factory:
//
//	func BenchmarkRuntime(b *testing.B) {
//		for _, c := range []int{1, 8, 64} {
//			b.Run(fmt.Sprintf("backend=memory/concurrency=%d", c), func(b *testing.B) {
//				workerbench.Runtime(b, func(testing.TB) queue.Backend { return memory.New(memory.Options{}) }, workerbench.Options{Concurrency: c})
//			})
//		}
//	}
//
// ChannelBaseline does the same work through a buffered channel and N
// goroutines, the limit the runtime's cost is measured against. Latency
// measures enqueue-to-handler latency in a closed loop (one task at a
// time); OpenLoop measures it under a steady open-loop load, by default
// at half of the peak rate it measures first.
package workerbench
