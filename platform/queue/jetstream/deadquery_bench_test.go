package jetstream_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// BenchmarkDeadListing compares a page of 200 dead letters of 256 KiB
// each read by QueryDead (headers only) with ListDead (whole messages):
//
//	go test -run '^$' -bench DeadListing -benchtime 5x ./platform/queue/jetstream/
func BenchmarkDeadListing(b *testing.B) {
	const n, size = 200, 256 << 10
	be := jetstream.OpenTestBackend(b, jetstream.Config{Mode: jetstream.ModeEmbedded, AckWait: time.Minute,
		Embedded: embedded.Config{StoreDir: b.TempDir()}})
	ctx := context.Background()
	q := "bench-dead"
	payload := []byte(strings.Repeat("p", size))
	for i := range n {
		require.NoError(b, be.Enqueue(ctx, &task.Task{Kind: "k", Queue: q, Payload: payload, ID: fmt.Sprint("t", i)}))
	}
	for got := 0; got < n; {
		ds, err := be.Lease(ctx, q, n-got, time.Minute)
		require.NoError(b, err)
		for _, d := range ds {
			require.NoError(b, be.DeadLetter(ctx, d, "bench"))
		}
		got += len(ds)
	}
	b.Run("QueryDead", func(b *testing.B) {
		for b.Loop() {
			page, err := be.QueryDead(ctx, q, queue.DeadQuery{Limit: n})
			require.NoError(b, err)
			require.Len(b, page.Items, n)
		}
	})
	b.Run("ListDead", func(b *testing.B) {
		for b.Loop() {
			ds, err := be.ListDead(ctx, q, n)
			require.NoError(b, err)
			require.Len(b, ds, n)
		}
	})
}
