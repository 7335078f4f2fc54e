package imaptest

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy for fault injection: it forwards connections to a
// target and can cut them, all at once (DropAll) or once a client sends a
// given command (CutOnce). It closes when the test ends.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[*pconn]struct{}
	trigger []byte
	after   int64
	closed  bool
	hide    [][2][]byte // server→client replacements (HideCapability)

	accepted atomic.Int64
	cuts     atomic.Int64
	wg       sync.WaitGroup
}

type pconn struct {
	client, server net.Conn
	budget         atomic.Int64 // bytes server→client left before the cut; -1: unlimited
	once           sync.Once
}

func (c *pconn) close() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection to target.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("imaptest: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*pconn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host is "127.0.0.1".
func (p *Proxy) Host() string { h, _, _ := net.SplitHostPort(p.Addr()); return h }

// Port is the proxy's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// Accepted is how many client connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cuts is how many connections CutOnce has cut.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// CutOnce arms a one-shot fault: the first time a client sends bytes
// containing trigger (for example "BODY.PEEK[]"), its connection is cut
// after afterBytes more bytes from the server have reached it — a server
// dying in the middle of a response.
func (p *Proxy) CutOnce(trigger string, afterBytes int64) {
	p.mu.Lock()
	p.trigger, p.after = []byte(trigger), afterBytes
	p.mu.Unlock()
}

// HideCapability makes the server look as if it lacked capability name
// (for example "IDLE"): " NAME" in what the server sends is replaced by a
// capability nobody knows, of the same length (so literal sizes stay
// right). It is meant for small test conversations: a token split across
// two reads is not replaced, and neither is one inside a message body.
func (p *Proxy) HideCapability(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hidden := append([]byte(" X"), bytes.Repeat([]byte("-"), len(name)-1)...)
	p.hide = append(p.hide, [2][]byte{[]byte(" " + name), hidden})
}

// DropAll cuts every open connection now.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.close()
	}
}

// Close stops accepting, cuts every connection and waits for the proxy's
// goroutines. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.DropAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &pconn{client: client, server: server}
		c.budget.Store(-1)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			return
		}
		p.conns[c] = struct{}{}
		p.accepted.Add(1)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.upstream(c)
		go p.downstream(c)
	}
}

func (p *Proxy) forget(c *pconn) {
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// upstream copies client→server and arms the cut when the trigger passes.
func (p *Proxy) upstream(c *pconn) {
	defer p.wg.Done()
	defer p.forget(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if len(p.trigger) > 0 && bytes.Contains(buf[:n], p.trigger) {
				c.budget.Store(p.after)
				p.trigger = nil
				p.cuts.Add(1)
			}
			p.mu.Unlock()
			if _, werr := c.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// downstream copies server→client, cutting when the budget runs out.
func (p *Proxy) downstream(c *pconn) {
	defer p.wg.Done()
	defer p.forget(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			p.mu.Lock()
			for _, h := range p.hide {
				chunk = bytes.ReplaceAll(chunk, h[0], h[1])
			}
			p.mu.Unlock()
			cut := false
			if b := c.budget.Load(); b >= 0 {
				if int64(len(chunk)) >= b {
					chunk, cut = chunk[:b], true
				}
				c.budget.Store(b - int64(len(chunk)))
			}
			if _, werr := c.client.Write(chunk); werr != nil || cut {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
