package lease

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// ttlStatus is a bucket status that tells its TTL.
type ttlStatus struct {
	jetstream.KeyValueStatus
	ttl time.Duration
}

func (s ttlStatus) TTL() time.Duration { return s.ttl }

// gatedRead is one status read of a gatedBucket, answered when the test
// sends its TTL.
type gatedRead struct {
	started time.Time
	answer  chan time.Duration
}

// gatedBucket is a bucket whose status reads wait for the test to answer
// them, each with the TTL it chooses, and whose creates, updates and
// deletes succeed at once.
type gatedBucket struct {
	jetstream.KeyValue
	reads   chan *gatedRead // each read as it starts
	mu      sync.Mutex
	updated time.Time // when the last Update was called
	created time.Time // when the last Create was called
}

func newGatedBucket() *gatedBucket { return &gatedBucket{reads: make(chan *gatedRead, 16)} }

func (g *gatedBucket) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	r := &gatedRead{started: time.Now(), answer: make(chan time.Duration, 1)}
	g.reads <- r
	select {
	case ttl := <-r.answer:
		return ttlStatus{ttl: ttl}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gatedBucket) Update(_ context.Context, _ string, _ []byte, rev uint64) (uint64, error) {
	g.mu.Lock()
	g.updated = time.Now()
	g.mu.Unlock()
	return rev + 1, nil
}

func (g *gatedBucket) Create(context.Context, string, []byte, ...jetstream.KVCreateOpt) (uint64, error) {
	g.mu.Lock()
	g.created = time.Now()
	g.mu.Unlock()
	return 1, nil
}

func (g *gatedBucket) Delete(context.Context, string, ...jetstream.KVDeleteOpt) error { return nil }

// nextRead returns the next status read to start, failing when none
// starts within d.
func (g *gatedBucket) nextRead(t *testing.T, d time.Duration, why string) *gatedRead {
	t.Helper()
	select {
	case r := <-g.reads:
		return r
	case <-time.After(d):
		t.Fatalf("no status read started within %v: %s", d, why)
		return nil
	}
}

// noRead fails when a status read starts within d.
func (g *gatedBucket) noRead(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case r := <-g.reads:
		r.answer <- time.Second
		t.Fatalf("a status read started: %s", why)
	case <-time.After(d):
	}
}

type ttlResult struct {
	ttl time.Duration
	err error
}

// goStatusSince asks k's status for a need that arose at since, in a
// goroutine: its TTL comes on the channel.
func goStatusSince(k *KV, since time.Time) <-chan ttlResult {
	c := make(chan ttlResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := k.statusSince(ctx, since)
		if err != nil {
			c <- ttlResult{err: err}
			return
		}
		c <- ttlResult{ttl: st.TTL()}
	}()
	return c
}

func requireTTL(t *testing.T, c <-chan ttlResult, want time.Duration, msg string) {
	t.Helper()
	select {
	case r := <-c:
		require.NoError(t, r.err, msg)
		require.Equal(t, want, r.ttl, msg)
	case <-time.After(5 * time.Second):
		t.Fatalf("no status: %s", msg)
	}
}

// TestStatusReadIsSharedOnlyByNeedsBeforeIt: the leases of a KV share
// their reads of the bucket's status, and a need counts only on a read
// that started no earlier than it arose. A read under way that started
// before it could have been answered before a lowering of the bucket's
// TTL that the renewal then misses: the holder would count on the old
// TTL while its key expires after the new one.
func TestStatusReadIsSharedOnlyByNeedsBeforeIt(t *testing.T) {
	t.Parallel()
	g := newGatedBucket()
	k := &KV{cfg: KVConfig{Bucket: "gated", TTL: 4 * time.Second}, kv: g}
	const old, lowered = 4 * time.Second, time.Second

	first := goStatusSince(k, time.Now())
	r1 := g.nextRead(t, 5*time.Second, "the first need")
	need := time.Now() // after r1 started
	second := goStatusSince(k, need)
	r2 := g.nextRead(t, 2*time.Second, "a need that arose after the read under way started joined it")
	require.False(t, r2.started.Before(need), "the read for the need started after it")
	third := goStatusSince(k, need) // r2 started after this need: shared
	g.noRead(t, 200*time.Millisecond, "a need that arose before the read under way started did not share it")

	r1.answer <- old // answered before the lowering
	r2.answer <- lowered
	requireTTL(t, first, old, "the first need")
	requireTTL(t, second, lowered, "the need after the first read started counts on the read after it")
	requireTTL(t, third, lowered, "the shared read")

	// A read done counts as well, for a need that arose before it started.
	requireTTL(t, goStatusSince(k, need), lowered, "a read done that started after the need")
	g.noRead(t, 200*time.Millisecond, "a read done that started after the need was not used")
	// Not for one that arose after it started.
	later := goStatusSince(k, time.Now())
	g.nextRead(t, 2*time.Second, "a need that arose after the latest read started counted on it").answer <- 2 * time.Second
	requireTTL(t, later, 2*time.Second, "a need after every read")
}

// TestRenewalCountsOnAReadStartedAfterItWasSent: a read of the bucket's
// status under way as a hold renews (another lease's, begun before the
// renewal was sent) does not count for the renewal: it reads anew, and
// counts on the TTL that read says.
func TestRenewalCountsOnAReadStartedAfterItWasSent(t *testing.T) {
	t.Parallel()
	const ttl = 8 * time.Second
	g := newGatedBucket()
	k := &KV{cfg: KVConfig{Bucket: "gated", TTL: ttl}, kv: g, epoch: time.Now()}
	l := &kvLease{k: k, name: "imap/INBOX", key: keyFor("lease", "imap/INBOX")}

	before := goStatusSince(k, time.Now()) // another lease's read, under way
	r1 := g.nextRead(t, 5*time.Second, "the other lease's read")
	// Taken a quarter of the TTL ago: its first renewal is due now.
	h := startHold(l, []byte("{}"), 1, time.Now().Add(-ttl/4), ttl)
	defer func() { _ = h.Release(context.Background()) }()
	r2 := g.nextRead(t, 3*time.Second, "the renewal counted on a read that started before it was sent")
	g.mu.Lock()
	updated := g.updated
	g.mu.Unlock()
	require.False(t, updated.IsZero(), "the renewal was sent")
	require.True(t, r2.started.After(updated), "the renewal's read started after it was sent")
	r1.answer <- ttl
	requireTTL(t, before, ttl, "the other lease's read")
	r2.answer <- 2 * time.Second // lowered meanwhile
	require.Eventually(t, func() bool { return time.Duration(k.seenTTL.Load()) == 2*time.Second }, 2*time.Second, time.Millisecond)
	// Counting on 2 s, the hold renews within half a second (a quarter
	// of it, on the grid), not within the 2 s a quarter of 8 s would
	// have it wait.
	r3 := g.nextRead(t, time.Second, "the next renewal, counting on the TTL the renewal's read said")
	r3.answer <- 2 * time.Second
	select {
	case <-h.Lost():
		t.Fatalf("lost: %+v", l.Status())
	default:
	}
}

// TestSharedStatusReadCutByItsStarterIsMadeAgain: a read whose starter
// gave up (its context ended: a hold released, or out of time) has no
// answer for the needs that share it: they read anew rather than fail.
func TestSharedStatusReadCutByItsStarterIsMadeAgain(t *testing.T) {
	t.Parallel()
	g := newGatedBucket()
	k := &KV{cfg: KVConfig{Bucket: "gated", TTL: 4 * time.Second}, kv: g}
	need := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	starter := make(chan error, 1)
	go func() {
		_, err := k.statusSince(ctx, need)
		starter <- err
	}()
	r1 := g.nextRead(t, 5*time.Second, "the starter's read")
	sharer := goStatusSince(k, need)
	g.noRead(t, 100*time.Millisecond, "the second need shares the read under way")
	cancel()
	require.ErrorIs(t, <-starter, context.Canceled)
	g.nextRead(t, 2*time.Second, "the need that shared a read cut short reads anew").answer <- time.Second
	requireTTL(t, sharer, time.Second, "the read made again")
	_ = r1
}

// TestTakeCountsOnAReadStartedAfterItsCreate: a read of the bucket's
// status under way as an attempt creates the lease's key (another
// lease's, begun before the create was sent) does not count for the
// hold: it reads anew.
func TestTakeCountsOnAReadStartedAfterItsCreate(t *testing.T) {
	t.Parallel()
	g := newGatedBucket()
	k := &KV{cfg: KVConfig{Bucket: "gated", TTL: 4 * time.Second}, kv: g, epoch: time.Now()}
	before := goStatusSince(k, time.Now()) // another lease's read, under way
	r1 := g.nextRead(t, 5*time.Second, "the other lease's read")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := k.Lease("imap/INBOX").Acquire(ctx)
		done <- err
	}()
	r2 := g.nextRead(t, 2*time.Second, "the take counted on a read that started before its create was sent")
	g.mu.Lock()
	created := g.created
	g.mu.Unlock()
	require.False(t, created.IsZero(), "the key was created")
	require.True(t, r2.started.After(created), "the take's read started after its create")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	r1.answer <- 4 * time.Second
	requireTTL(t, before, 4*time.Second, "the other lease's read")
}

// TestTTLLastSeenIsTheLatestReadsNotTheLastAnswereds: two reads of the
// bucket's status under way, the later one answered first with a lowered
// TTL, the earlier one (started before the lowering) after it. The TTL
// last seen, which the leases' Status and health checks say, was the
// last answered: the old one, as if the bucket agreed with the host, while
// its holders counted on the lowered one. It is the latest read's.
func TestTTLLastSeenIsTheLatestReadsNotTheLastAnswereds(t *testing.T) {
	t.Parallel()
	const own, lowered = 4 * time.Second, time.Second
	g := newGatedBucket()
	k := &KV{cfg: KVConfig{Bucket: "gated", TTL: own}, kv: g}
	k.seenTTL.Store(int64(own))
	first := goStatusSince(k, time.Now())
	r1 := g.nextRead(t, 5*time.Second, "the first read")
	second := goStatusSince(k, time.Now())
	r2 := g.nextRead(t, 2*time.Second, "the second read")
	r2.answer <- lowered
	requireTTL(t, second, lowered, "the later read")
	r1.answer <- own // answered last, from before the lowering
	requireTTL(t, first, own, "the earlier read")
	require.Equal(t, lowered, time.Duration(k.seenTTL.Load()), "the TTL last seen is the latest read's")
	require.Contains(t, k.ttlProblem(), "has ttl 1s", "the difference stays said")
}
