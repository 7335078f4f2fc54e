package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// advisoryAt stands for an advisory stored at ts: storedCopy reads only
// its metadata.
type advisoryAt struct {
	jetstream.Msg
	ts time.Time
}

func (m advisoryAt) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Timestamp: m.ts}, nil
}

// BenchmarkStoredCopy is the cost of looking for the dead letter of an
// exhausted task before storing it: none for an advisory younger than
// half the duplicate window ("fresh", the usual case), else a scan of the
// queue's dead letters stored since the advisory, here n of them, none
// the one looked for (the worst case):
//
//	go test -run '^$' -bench StoredCopy -benchtime 20x ./platform/queue/jetstream/
func BenchmarkStoredCopy(b *testing.B) {
	be := openTestBackend(b, Config{Mode: ModeEmbedded, AckWait: time.Minute, Embedded: embedded.Config{StoreDir: b.TempDir()}})
	ctx := context.Background()
	const qn = "bench-copy"
	require.NoError(b, be.Enqueue(ctx, &task.Task{Kind: "k", Queue: qn}))
	q, err := be.queue(qn)
	require.NoError(b, err)
	start := time.Now().Add(-time.Hour)
	dead := 0
	for _, n := range []int{0, 100, 1000} {
		for ; dead < n; dead++ {
			_, err := be.publishDead(ctx, q, &task.Task{ID: fmt.Sprint("d", dead), Kind: "k", Queue: qn},
				false, uint64(1_000_000+dead), 1, "bench")
			require.NoError(b, err)
		}
		b.Run(fmt.Sprintf("old/dead=%d", n), func(b *testing.B) {
			for b.Loop() {
				dl, err := be.storedCopy(ctx, q, 1, "none", advisoryAt{ts: start})
				require.NoError(b, err)
				require.Nil(b, dl)
			}
		})
	}
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			dl, err := be.storedCopy(ctx, q, 1, "none", advisoryAt{ts: time.Now()})
			require.NoError(b, err)
			require.Nil(b, dl)
		}
	})
}
