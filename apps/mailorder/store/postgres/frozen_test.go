package postgres_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/apps/mailorder/store/storetest"
)

// freezingProxy forwards TCP connections to a PostgreSQL server. Once
// armed, a connection whose client sends a message with freezeOn stops
// forwarding in both directions and keeps its server side open: to the
// server, the client is a host that froze or was cut off mid-transaction
// (no FIN, no RST: as a machine that lost power or its network).
type freezingProxy struct {
	ln       net.Listener
	target   string
	freezeOn []byte
	armed    atomic.Bool
	frozen   chan struct{}
	once     sync.Once
	done     chan struct{} // closed when the test ends

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startFreezingProxy(t *testing.T, target string, freezeOn string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezingProxy{ln: ln, target: target, freezeOn: []byte(freezeOn), frozen: make(chan struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false // closed
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *freezingProxy) accept() {
	defer p.wg.Done()
	p.mu.Lock()
	p.conns = []net.Conn{}
	p.mu.Unlock()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c) || !p.track(s) {
			_ = c.Close()
			_ = s.Close()
			return
		}
		var stop atomic.Bool
		p.wg.Add(2)
		go func() { // client -> server; the client closing does not reach the server
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 && p.armed.Load() && bytes.Contains(buf[:n], p.freezeOn) {
					stop.Store(true)
					p.once.Do(func() { close(p.frozen) })
					_, _ = io.Copy(io.Discard, c) // until the client gives up
					return
				}
				if n > 0 {
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server -> client, until frozen
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if stop.Load() {
					// Frozen: read nothing more (the server's writes
					// fill the socket buffers), until the test ends.
					<-p.done
					return
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *freezingProxy) close() {
	_ = p.ln.Close()
	close(p.done)
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

// TestHostFrozenMidTransactionDoesNotBlockTheOrder: host A stores an order
// and freezes (cut off, powered down) inside the transaction, after its
// order row went in and before its lines: to PostgreSQL its session is
// idle in a transaction that holds the order's unique key, and nothing
// tells it the host is gone for hours (TCP keepalive). The redelivery on
// host B must store the order soon; before, its insert waited on A's key
// until its context ended, every attempt, until the mail was
// dead-lettered without its order ever being stored.
func TestHostFrozenMidTransactionDoesNotBlockTheOrder(t *testing.T) {
	t.Parallel()
	pgURL, schema := testSchema(t)
	u, err := url.Parse(pgURL)
	require.NoError(t, err)
	p := startFreezingProxy(t, u.Host, "INSERT INTO order_lines")
	viaProxy := *u
	viaProxy.Host = p.ln.Addr().String()

	b := open(t, pgURL, schema) // migrates
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := postgres.Open(ctx, postgres.Config{URL: viaProxy.String(), Schema: schema, IdleInTransactionTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })

	o := storetest.MakeOrder(7, 3)
	p.armed.Store(true)
	aDone := make(chan error, 1)
	actx, acancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer acancel()
	go func() {
		_, err := a.SaveOrder(actx, o)
		aDone <- err
	}()
	select {
	case <-p.frozen:
	case err := <-aDone:
		t.Fatalf("host A's save ended before it froze: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("host A never reached its lines")
	}

	// The redelivery on host B, within the task's lease.
	bctx, bcancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer bcancel()
	start := time.Now()
	created, err := b.SaveOrder(bctx, o)
	require.NoError(t, err, "host B stores the order a frozen host left half-written (after %v)", time.Since(start))
	require.True(t, created, "nothing of A's transaction was committed")
	got, err := b.Get(context.Background(), o.ID)
	require.NoError(t, err)
	storetest.RequireEqualOrders(t, o, got)
	pending, err := b.PendingConfirmations(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)

	acancel()
	require.Error(t, <-aDone, "host A's save did not complete")
}
