package jetstream

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// A lookup on a backend that takes the server for one answering batched
// direct gets (it connected to a 2.11 server) whose work stream's server
// does not (a cluster upgraded one server after the other, or a host
// reconnected to an older server) reads the stream one message per
// request: it failed with the client's "batch get not supported by
// server". PLBA_TEST_NATS_URL's server (2.9 on this machine) is the older
// one; the test is skipped when it answers batched gets.
func TestFindTasksWhereBatchedGetsAreUnsupported(t *testing.T) {
	url := os.Getenv("PLBA_TEST_NATS_URL")
	if url == "" {
		t.Skip("PLBA_TEST_NATS_URL not set")
	}
	prefix := uniquePrefix(t)
	t.Cleanup(func() { deleteStreams(t, url, prefix) }) // after the backend's Close
	b := openTestBackend(t, Config{URL: url, StreamPrefix: prefix, AckWait: time.Minute})
	if b.multiGet {
		t.Skip("the server answers batched direct gets")
	}
	ctx := t.Context()
	const q = "find-unbatched"
	for i := range 300 {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: q, Key: fmt.Sprint("key-", i), Payload: []byte("{}")}))
	}
	b.multiGet = true // as from a 2.11 server, the stream's server older
	s, err := b.FindTasks(ctx, q, queue.TaskLookup{Key: "key-290"})
	require.NoError(t, err)
	require.Empty(t, s.NotSearched)
	require.Len(t, s.Found, 1)
	require.Equal(t, "key-290", s.Found[0].Task.Key)
}

// barrierStream is a work stream of the messages 1 to last whose reads
// (GetMsg, the next message from seq) are answered only once findWorkers
// of them are waiting at once: a lookup that reads its ranges one after
// the other waits for its context's end.
type barrierStream struct {
	jetstream.Stream
	last     uint64
	mu       sync.Mutex
	waiting  int
	together chan struct{} // closed once findWorkers reads wait at once
}

func (s *barrierStream) GetMsg(ctx context.Context, seq uint64, _ ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	s.mu.Lock()
	s.waiting++
	if s.waiting == findWorkers {
		close(s.together)
	}
	s.mu.Unlock()
	select {
	case <-s.together:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if seq > s.last {
		return nil, jetstream.ErrMsgNotFound
	}
	return &jetstream.RawStreamMsg{Subject: "s", Sequence: seq}, nil
}

// A lookup one message per request (a server before 2.11, a stream
// without direct gets) reads the findWorkers ranges of the work stream
// at once, each message once: through 20,000 queued tasks, one after the
// other, it took 4.9 s on a 2.9 server, past a schedule's attempt timeout
// (TestFindTasksThroughABacklog shows the time it takes now).
func TestFindRangesAreReadAtOnce(t *testing.T) {
	const last = findWorkers * findMinRange * 2
	st := &barrierStream{last: last, together: make(chan struct{})}
	rs := findRanges(1, last)
	require.Len(t, rs, findWorkers)
	var budget atomic.Int64
	budget.Store(maxFindScan)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	(&Backend{}).readRanges(ctx, st, rs, &budget, func(f *[]queue.FoundTask) func(*jetstream.RawStreamMsg) {
		return func(raw *jetstream.RawStreamMsg) {
			*f = append(*f, queue.FoundTask{Task: &task.Task{ID: fmt.Sprint(raw.Sequence)}})
		}
	})
	var all []string
	for _, r := range rs {
		require.NoError(t, r.err)
		require.Zero(t, r.unreadFrom)
		for _, f := range r.found {
			all = append(all, f.Task.ID)
		}
	}
	require.Len(t, all, last)
	for n, id := range all {
		require.Equal(t, fmt.Sprint(n+1), id, "each message read once, in stream order")
	}
	require.Equal(t, int64(maxFindScan-last), budget.Load())
}
