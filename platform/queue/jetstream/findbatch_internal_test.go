package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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
	var rb [5]byte
	_, err := rand.Read(rb[:])
	require.NoError(t, err)
	prefix := "PLBATEST-" + strings.ToUpper(hex.EncodeToString(rb[:]))
	b := openTestBackend(t, Config{URL: url, StreamPrefix: prefix, AckWait: time.Minute})
	if b.multiGet {
		t.Skip("the server answers batched direct gets")
	}
	ctx := t.Context()
	const q = "find-unbatched"
	t.Cleanup(func() {
		qn, err := b.names.forQueue(q)
		require.NoError(t, err)
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range []string{qn.stream, b.names.deadStream(), b.names.doneStream(), b.names.advisoryStream()} {
			_ = b.js.DeleteStream(dctx, n)
		}
	})
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
