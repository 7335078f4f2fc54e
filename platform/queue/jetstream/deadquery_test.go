package jetstream_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// TestQueryDeadReadsNoPayload: a page of 40 dead letters of 512 KiB each
// allocates far less than their payloads (a headers-only read), and still
// reports each payload's size; GetDead reads the one payload asked for.
// It needs a server outside the process (PLBA_TEST_NATS_URL): an embedded
// server's own reads would count in the process's allocations.
func TestQueryDeadReadsNoPayload(t *testing.T) {
	url := externalURL(t)
	const n, size = 40, 512 << 10
	prefix := jetstream.UniquePrefix(t)
	t.Cleanup(func() { jetstream.DeleteStreams(t, url, prefix) })
	b := openBackend(t, jetstream.Config{URL: url, StreamPrefix: prefix, AckWait: time.Minute})
	ctx := context.Background()
	q := "dead-no-payload"
	payload := []byte(strings.Repeat("p", size))
	for i := range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: q, ID: fmt.Sprint("t", i), Payload: payload}))
	}
	for got := 0; got < n; {
		ds, err := b.Lease(ctx, q, n-got, time.Minute)
		require.NoError(t, err)
		for _, d := range ds {
			require.NoError(t, b.DeadLetter(ctx, d, "too big"))
		}
		got += len(ds)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	page, err := b.QueryDead(ctx, q, queue.DeadQuery{Limit: n})
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.Len(t, page.Items, n)
	for _, d := range page.Items {
		require.Nil(t, d.Task.Payload)
		require.Equal(t, size, d.PayloadSize)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a page of %d dead letters of %d bytes allocated %d bytes", n, size, alloc)
	require.Less(t, alloc, uint64(n*size/8), "the page read the payloads")

	d, err := b.GetDead(ctx, q, "t7")
	require.NoError(t, err)
	require.Len(t, d.Task.Payload, size)
}
