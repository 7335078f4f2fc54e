package lease_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// events records when each host's copy of a source started and stopped.
type events struct {
	mu      sync.Mutex
	running map[string]bool
	log     []string
	overlap []string
	started chan string
}

type recordingSource struct {
	host string
	ev   *events
}

func (s recordingSource) Name() string { return "imap/INBOX" }

func (s recordingSource) Run(ctx context.Context, _ source.Emitter) error {
	s.ev.mu.Lock()
	for h, r := range s.ev.running {
		if r {
			s.ev.overlap = append(s.ev.overlap, s.host+" started while "+h+" ran")
		}
	}
	s.ev.running[s.host] = true
	s.ev.log = append(s.ev.log, s.host+" start")
	s.ev.mu.Unlock()
	s.ev.started <- s.host
	<-ctx.Done()
	s.ev.mu.Lock()
	s.ev.running[s.host] = false
	s.ev.log = append(s.ev.log, s.host+" stop")
	s.ev.mu.Unlock()
	return nil
}

type discard struct{}

func (discard) Emit(context.Context, ...*task.Task) error { return nil }

// An exclusive source on a KV lease: the holder's host is cut off from
// NATS; its source stops before the other host's starts, within the TTL
// and a poll; the status names the holder.
func TestExclusiveSourceOnKVLease(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 3 * time.Second
	ev := &events{running: map[string]bool{}, started: make(chan string, 4)}
	hosts := map[string]*host{}
	srcs := map[string]source.Source{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, name := range []string{"host-a", "host-b"} {
		hosts[name] = newHost(t, url, bucket, name, ttl)
		srcs[name] = source.Exclusive(recordingSource{host: name, ev: ev}, hosts[name].kv.Lease("imap/INBOX"))
		wg.Add(1)
		go func() { defer wg.Done(); _ = srcs[name].Run(ctx, discard{}) }()
	}
	first := recv(t, ev.started, ttl+10*time.Second)
	other := map[string]string{"host-a": "host-b", "host-b": "host-a"}[first]
	d := srcs[other].(source.Detailer).Details().(source.ExclusiveDetails)
	for d.Lease.Holder != first { // the other host sees who holds it
		time.Sleep(50 * time.Millisecond)
		d = srcs[other].(source.Detailer).Details().(source.ExclusiveDetails)
	}
	require.False(t, d.Lease.Held)
	require.False(t, d.Lease.Since.IsZero())

	cut := time.Now()
	hosts[first].nc.Close()
	second := recv(t, ev.started, 3*ttl)
	require.Equal(t, other, second)
	t.Logf("the source moved from %s to %s in %v", first, second, time.Since(cut))
	require.Less(t, time.Since(cut), ttl+ttl/3+2*time.Second, "within the TTL and a poll (plus slack for a loaded machine)")
	ev.mu.Lock()
	defer ev.mu.Unlock()
	require.Empty(t, ev.overlap)
	require.Equal(t, []string{first + " start", first + " stop", second + " start"}, ev.log)
	d = srcs[second].(source.Detailer).Details().(source.ExclusiveDetails)
	require.True(t, d.Lease.Held)
	require.EqualValues(t, 1, d.Lease.HandOvers)
}

func recv(t *testing.T, c <-chan string, within time.Duration) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(within):
		t.Fatalf("nothing within %v", within)
		return ""
	}
}
