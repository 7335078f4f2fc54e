package lease_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/source"
)

// The holder of an exclusive source's lease is partitioned from NATS (its
// connection stays open, nothing gets through): it cannot renew, and it
// stops its source before its lease can expire, so the other host's
// source starts only after it stopped; the other host takes over within
// the TTL and a poll.
func TestExclusiveSourceStopsWhenItsHostIsPartitioned(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 3 * time.Second
	ev := &events{running: map[string]bool{}, started: make(chan string, 4)}
	proxies := map[string]*netfault.Proxy{}
	srcs := map[string]source.Source{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, name := range []string{"host-a", "host-b"} {
		proxies[name] = netfault.NewProxy(t, hostPort(t, url))
		h := newHost(t, "nats://"+proxies[name].Addr(), bucket, name, ttl)
		srcs[name] = source.Exclusive(recordingSource{host: name, ev: ev}, h.kv.Lease("imap/INBOX"))
		wg.Add(1)
		go func() { defer wg.Done(); _ = srcs[name].Run(ctx, discard{}) }()
	}
	first := recv(t, ev.started, ttl+10*time.Second)
	other := map[string]string{"host-a": "host-b", "host-b": "host-a"}[first]
	time.Sleep(ttl) // a few renewals

	cut := time.Now()
	proxies[first].Freeze()
	second := recv(t, ev.started, 3*ttl)
	require.Equal(t, other, second)
	took := time.Since(cut)
	t.Logf("partitioned holder %s; %s took over after %v", first, second, took)
	require.Less(t, took, ttl+ttl/3+2*time.Second, "within the TTL and a poll (plus slack for a loaded machine)")
	ev.mu.Lock()
	require.Empty(t, ev.overlap, "never two at once")
	require.Equal(t, []string{first + " start", first + " stop", second + " start"}, ev.log)
	ev.mu.Unlock()
	d := srcs[first].(source.Detailer).Details().(source.ExclusiveDetails)
	require.EqualValues(t, 1, d.Losses, "the partitioned host lost its hold")

	// The partition heals: the first host contends again and waits.
	proxies[first].Thaw()
	require.Eventually(t, func() bool {
		d := srcs[first].(source.Detailer).Details().(source.ExclusiveDetails)
		return d.Lease.Holder == second && !d.Lease.Held
	}, 3*ttl, 50*time.Millisecond)
	ev.mu.Lock()
	defer ev.mu.Unlock()
	require.Len(t, ev.log, 3, "the healed host did not start again: %v", ev.log)
}

func hostPort(t *testing.T, url string) string {
	t.Helper()
	u := url
	if i := len("nats://"); len(u) > i && u[:i] == "nats://" {
		u = u[i:]
	}
	_, _, err := net.SplitHostPort(u)
	require.NoError(t, err, "a NATS URL with host and port: %q", url)
	return u
}
