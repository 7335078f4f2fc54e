package memory

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TestGenSeq: an id task.NewID makes in this process is read as its
// counter (consecutive ids, consecutive counters); anything else is not.
func TestGenSeq(t *testing.T) {
	t.Parallel()
	a, b := task.NewID(), task.NewID()
	sa, ok := genSeq(a)
	require.True(t, ok, a)
	sb, ok := genSeq(b)
	require.True(t, ok, b)
	require.Greater(t, sb, sa)
	for _, k := range []string{
		"", "order-1", a[:31], a + "0", strings.ToUpper(a),
		"0123456789abcdef" + a[16:], // another prefix
		a[:16] + "0123456789abcdeg", // not hex
		a[:16] + "0123456789abcde/",
	} {
		if k == a {
			continue
		}
		_, ok := genSeq(k)
		require.False(t, ok, k)
	}
}

// TestKeyPages: entries are found by counter across page boundaries; a
// page that empties is removed (and kept as a spare), and a counter whose
// page is gone finds nothing.
func TestKeyPages(t *testing.T) {
	t.Parallel()
	var p keyPages
	es := map[uint64]*entry{}
	for s := uint64(keyPageLen - 3); s < 3*keyPageLen+5; s += 2 {
		es[s] = &entry{}
		p.put(s, es[s])
	}
	require.Equal(t, len(es), p.len())
	for s, e := range es {
		require.Same(t, e, p.get(s))
		require.Nil(t, p.get(s+1))
	}
	for s := range es {
		p.del(s)
		require.Nil(t, p.get(s))
	}
	require.Zero(t, p.len())
	require.Empty(t, p.m)
	require.NotEmpty(t, p.spare)
	require.LessOrEqual(t, len(p.spare), maxSparePages)
	for _, pg := range p.spare {
		require.Equal(t, keyPage{}, *pg, "a spare page is empty")
	}
	e := &entry{}
	p.put(7*keyPageLen, e)
	require.Same(t, e, p.get(7*keyPageLen))
	require.Nil(t, p.get(8*keyPageLen))
}

// TestGeneratedKeysDeduplicate: the keys of tasks with generated ids are
// in the pages, and de-duplicate as any key does against the task's
// copies (which carry the generated key): a copy of a stored task is that
// task (stored already); after its ack it is not remembered (only the
// call that made it sends it again: task.KeyGenerated). A producer's key
// written as that id is another key, in the map by hash: stored beside
// it, and remembered for the window after its task. The index holds no
// key once every task ended and the window is over.
func TestGeneratedKeysDeduplicate(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	b := New(Options{DedupWindow: time.Minute, Now: clock})
	defer b.Close(context.Background())
	ctx := context.Background()

	first := &task.Task{Kind: "k", Queue: "q"}
	require.NoError(t, b.Enqueue(ctx, first))
	q := b.queueFor("q")
	q.mu.Lock()
	require.Equal(t, 1, q.keys.pages.len(), "a generated key is in the pages")
	require.Empty(t, q.keys.live)
	q.mu.Unlock()

	same := first.Clone()
	require.NoError(t, b.Enqueue(ctx, same))
	require.False(t, task.Dropped(same))
	require.True(t, task.StoredAgain(same), "a copy of a stored task is that task")

	producers := &task.Task{Kind: "k", Queue: "q", Key: first.Key}
	require.NoError(t, b.Enqueue(ctx, producers))
	require.False(t, task.Dropped(producers), "a producer's key written as a generated one is another key")
	require.False(t, task.StoredAgain(producers))
	q.mu.Lock()
	require.Equal(t, 1, q.keys.pages.len())
	require.Len(t, q.keys.live, 1, "a producer's key is in the map by hash")
	q.mu.Unlock()
	found, err := b.FindTasks(ctx, "q", queue.TaskLookup{Key: first.Key})
	require.NoError(t, err)
	var ids []string
	for _, f := range found.Found {
		ids = append(ids, f.Task.ID)
	}
	require.ElementsMatch(t, []string{first.ID, producers.ID}, ids, "a key is found in both spaces")

	ds, err := b.Lease(ctx, "q", 2, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	for _, d := range ds {
		require.NoError(t, b.Ack(ctx, d))
	}
	q.mu.Lock()
	require.Zero(t, q.keys.pages.len())
	require.Empty(t, q.keys.live)
	require.Len(t, q.keys.done, 1, "the producer's key remembered for the window; the generated one not (only the call that made it sends it again: task.KeyGenerated)")
	q.mu.Unlock()

	byProducer := &task.Task{Kind: "k", Queue: "q", Key: first.Key}
	require.NoError(t, b.Enqueue(ctx, byProducer))
	o, _, fin := task.Finished(byProducer)
	require.True(t, fin, "a producer's key is refused within its window")
	require.Equal(t, task.Succeeded, o)
	again := first.Clone()
	require.NoError(t, b.Enqueue(ctx, again))
	require.False(t, task.Dropped(again), "a generated key is not remembered after its task")

	now.Add(int64(2 * time.Minute))
	later := &task.Task{Kind: "k", Queue: "q", Key: first.Key}
	require.NoError(t, b.Enqueue(ctx, later))
	require.False(t, task.Dropped(later), "the window over, the producer's key is stored again")
	q.mu.Lock()
	require.Empty(t, q.keys.done, "the remembered keys were pruned")
	q.mu.Unlock()
	ds, err = b.Lease(ctx, "q", 2, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	for _, d := range ds {
		require.NoError(t, b.Ack(ctx, d))
	}
	q.mu.Lock()
	require.Zero(t, q.keys.pages.len())
	q.mu.Unlock()
}

// len returns how many entries the pages hold.
func (p *keyPages) len() int {
	n := 0
	for _, pg := range p.m {
		n += pg.n
	}
	return n
}
