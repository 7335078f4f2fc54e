package lease_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/source"
)

// proxy forwards TCP connections to a NATS server until it is frozen:
// then it stops forwarding in both directions and keeps the connections
// open, as a network partition does (no error, no close: requests just
// get no answer).
type proxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	frozen chan struct{} // closed while forwarding; replaced when frozen
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, upstream: upstream, frozen: make(chan struct{})}
	close(p.frozen)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

// pipe copies from src to dst, holding what it read while frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.frozen
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = dst.Close()
			}
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = make(chan struct{})
	p.mu.Unlock()
}

func (p *proxy) thaw() {
	p.mu.Lock()
	select {
	case <-p.frozen:
	default:
		close(p.frozen)
	}
	p.mu.Unlock()
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.thaw()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

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
	proxies := map[string]*proxy{}
	srcs := map[string]source.Source{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, name := range []string{"host-a", "host-b"} {
		proxies[name] = newProxy(t, hostPort(t, url))
		h := newHost(t, proxies[name].url(), bucket, name, ttl)
		srcs[name] = source.Exclusive(recordingSource{host: name, ev: ev}, h.kv.Lease("imap/INBOX"))
		wg.Add(1)
		go func() { defer wg.Done(); _ = srcs[name].Run(ctx, discard{}) }()
	}
	first := recv(t, ev.started, 10*time.Second)
	other := map[string]string{"host-a": "host-b", "host-b": "host-a"}[first]
	time.Sleep(ttl) // a few renewals

	cut := time.Now()
	proxies[first].freeze()
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
	proxies[first].thaw()
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
