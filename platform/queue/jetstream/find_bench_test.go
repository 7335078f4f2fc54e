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

// BenchmarkFindTasks measures a lookup by key of the last of 5,000 queued
// tasks (1 KiB each): the work stream is read message by message.
//
//	go test -run '^$' -bench FindTasks -benchtime 5x ./platform/queue/jetstream/
func BenchmarkFindTasks(b *testing.B) {
	const n = 5000
	be := jetstream.OpenTestBackend(b, jetstream.Config{Mode: jetstream.ModeEmbedded, AckWait: time.Minute,
		Embedded: embedded.Config{StoreDir: b.TempDir()}})
	ctx := context.Background()
	q := "bench-find"
	payload := []byte(strings.Repeat("p", 1<<10))
	batch := make([]*task.Task, 0, 500)
	for i := range n {
		batch = append(batch, &task.Task{Kind: "k", Queue: q, Key: fmt.Sprint("key-", i), Payload: payload})
		if len(batch) == cap(batch) {
			require.NoError(b, be.Enqueue(ctx, batch...))
			batch = batch[:0]
		}
	}
	for b.Loop() {
		s, err := be.FindTasks(ctx, q, queue.TaskLookup{Key: fmt.Sprint("key-", n-1)})
		require.NoError(b, err)
		require.Len(b, s.Found, 1)
		require.Equal(b, queue.StateReady, s.Found[0].State)
	}
}
