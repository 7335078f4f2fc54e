package jetstream_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/workerbench"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// benchBackend opens an embedded backend with file storage in a fresh
// directory; workerbench closes it.
func benchBackend(sync string, prefetch int) func(tb testing.TB) queue.Backend {
	return func(tb testing.TB) queue.Backend {
		cfg := jetstream.Config{
			Sync:     sync,
			Prefetch: prefetch,
			Embedded: embedded.Config{StoreDir: tb.TempDir()},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
}

// BenchmarkJetStreamRuntime drives no-op tasks source -> backend -> worker
// pool -> handler (one op is one task), on the embedded server with file
// storage, beside the memory backend as the baseline.
func BenchmarkJetStreamRuntime(b *testing.B) {
	b.Run("sync=none/backend=memory", func(b *testing.B) {
		for _, c := range []int{8, 64} {
			b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
				workerbench.Runtime(b, func(testing.TB) queue.Backend { return memory.New(memory.Options{}) },
					workerbench.Options{Concurrency: c})
			})
		}
	})
	for _, sync := range []string{embedded.SyncInterval, embedded.SyncAlways} {
		b.Run("sync="+sync+"/backend=jetstream", func(b *testing.B) {
			for _, c := range []int{8, 64} {
				b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
					workerbench.Runtime(b, benchBackend(sync, max(64, 2*c)), workerbench.Options{Concurrency: c})
				})
			}
		})
	}
}

// BenchmarkJetStreamEnqueue measures Enqueue alone, in batches of 64.
func BenchmarkJetStreamEnqueue(b *testing.B) {
	for _, sync := range []string{embedded.SyncInterval, embedded.SyncAlways} {
		b.Run("sync="+sync, func(b *testing.B) {
			be := benchBackend(sync, 64)(b)
			defer be.Close(context.Background())
			ctx := context.Background()
			const batch = 64
			tasks := make([]*task.Task, 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; {
				tasks = tasks[:0]
				for i := 0; i < batch && sent+i < b.N; i++ {
					tasks = append(tasks, &task.Task{Kind: "bench.noop", Queue: "bench"})
				}
				if err := be.Enqueue(ctx, tasks...); err != nil {
					b.Fatal(err)
				}
				sent += len(tasks)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
		})
	}
}

// BenchmarkJetStreamBareLoop is the engine's limit on the same embedded
// server: async publishes with every ack checked, then Consume with an
// explicit ack per message, through nats.go alone. One op is one message
// published and consumed.
func BenchmarkJetStreamBareLoop(b *testing.B) {
	for _, sync := range []string{embedded.SyncInterval, embedded.SyncAlways} {
		b.Run("sync="+sync, func(b *testing.B) {
			srv, err := embedded.Start(context.Background(), embedded.Config{StoreDir: b.TempDir(), Sync: sync}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			nc, err := nats.Connect("", srv.ClientOptions()...)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := njs.New(nc, njs.WithPublishAsyncMaxPending(4096))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			s, err := js.CreateStream(ctx, njs.StreamConfig{Name: "BARE", Subjects: []string{"bare"}, Retention: njs.WorkQueuePolicy, Storage: njs.FileStorage})
			if err != nil {
				b.Fatal(err)
			}
			cons, err := s.CreateOrUpdateConsumer(ctx, njs.ConsumerConfig{Durable: "w", AckPolicy: njs.AckExplicitPolicy, MaxAckPending: 10000})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), workerbench.CPUTime()
			futures := make([]njs.PubAckFuture, 0, 64)
			hdr := nats.Header{"Plba-Task-Id": []string{"x"}}
			for i := 0; i < b.N; i++ {
				m := &nats.Msg{Subject: "bare", Header: hdr, Data: nil}
				m.Header = nats.Header{"Nats-Msg-Id": []string{strconv.Itoa(i)}}
				f, err := js.PublishMsgAsync(m)
				if err != nil {
					b.Fatal(err)
				}
				futures = append(futures, f)
				if len(futures) == cap(futures) || i == b.N-1 {
					for _, f := range futures {
						select {
						case <-f.Ok():
						case err := <-f.Err():
							b.Fatal(err)
						}
					}
					futures = futures[:0]
				}
			}
			published := time.Since(start)
			var got atomic.Int64
			done := make(chan struct{})
			cc, err := cons.Consume(func(m njs.Msg) {
				_ = m.Ack()
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}, njs.PullMaxMessages(256))
			if err != nil {
				b.Fatal(err)
			}
			<-done
			elapsed, cpu := time.Since(start), workerbench.CPUTime()-cpu0
			b.StopTimer()
			cc.Stop()
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/task")
			b.ReportMetric(float64(b.N)/published.Seconds(), "pub/s")
			b.ReportMetric(float64(b.N)/(elapsed-published).Seconds(), "drain/s")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
		})
	}
}

// BenchmarkJetStreamHalfLoad measures enqueue-to-handler latency at half
// of the peak rate (workerbench.OpenLoop measures the peak first, on a
// backend of its own), concurrency 8, for the memory backend and the
// embedded JetStream backend with file storage.
func BenchmarkJetStreamHalfLoad(b *testing.B) {
	o := workerbench.Options{Concurrency: 8}
	b.Run("sync=none/backend=memory", func(b *testing.B) {
		workerbench.OpenLoop(b, func(testing.TB) queue.Backend { return memory.New(memory.Options{}) }, o, 0)
	})
	for _, sync := range []string{embedded.SyncInterval, embedded.SyncAlways} {
		b.Run("sync="+sync+"/backend=jetstream", func(b *testing.B) {
			workerbench.OpenLoop(b, benchBackend(sync, 64), o, 0)
		})
	}
}
