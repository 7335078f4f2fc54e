package imaptest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy for fault injection: it forwards connections to a
// target and can cut them, all at once (DropAll) or once a client sends a
// given command (CutOnce), hide a capability, and, through Hooks, answer
// or hold a client's command in the server's stead, make the server go
// silent or rewrite what it sends. It closes when the test ends, ending
// every goroutine it started.
type Proxy struct {
	ln     net.Listener
	target string
	hooks  Hooks
	done   chan struct{} // closed by Close

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	trigger string
	after   int64
	closed  bool
	hide    [][2][]byte // server→client replacements (HideCapability)

	accepted atomic.Int64
	cuts     atomic.Int64
	wg       sync.WaitGroup
}

// Hooks say what a Proxy does to the conversations it forwards. They are
// called from the proxy's goroutines, one per connection and direction,
// so they must be safe for concurrent use.
type Hooks struct {
	// OnLine sees every line a client sends (CRLF included) before it is
	// forwarded; returning true drops it (the hook answered it itself
	// with Conn.Reply). It may block, until Conn.Closed at most.
	OnLine func(c *Conn, line string) (handled bool)
	// Rewrite changes what the server sends (nil: unchanged). Tokens
	// split across two reads are missed: keep it to small conversations.
	Rewrite func([]byte) []byte
}

// Conn is one proxied connection.
type Conn struct {
	n              int64
	client, server net.Conn
	closed         <-chan struct{}
	budget         atomic.Int64 // bytes server→client left before the cut; -1: unlimited
	muted          atomic.Bool
	wmu            sync.Mutex // serializes writes to client
	once           sync.Once
}

// N numbers the connections in the order accepted, from 1.
func (c *Conn) N() int64 { return c.n }

// Closed is closed when the proxy closes.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// Reply sends s to the client as if the server had.
func (c *Conn) Reply(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = io.WriteString(c.client, s)
}

// Mute drops everything the server sends from now on: the server seems
// to hang while the TCP connection stays up.
func (c *Conn) Mute() { c.muted.Store(true) }

// Close ends the connection both ways, as a server process that dies
// does.
func (c *Conn) Close() { c.close() }

// Reset ends the connection with a TCP reset to the client (as a
// firewall, or a host that crashed, does), and closes the server side.
func (c *Conn) Reset() {
	c.once.Do(func() {
		if tc, ok := c.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

func (c *Conn) close() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection to target.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	return NewProxyWith(tb, target, Hooks{})
}

// NewProxyWith is NewProxy with hooks.
func NewProxyWith(tb testing.TB, target string, hooks Hooks) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("imaptest: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, hooks: hooks, done: make(chan struct{}), conns: map[*Conn]struct{}{}}
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

// CutOnce arms a one-shot fault: the first time a client sends a line
// containing trigger (for example "BODY.PEEK[]"), its connection is cut
// after afterBytes more bytes from the server have reached it — a server
// dying in the middle of a response.
func (p *Proxy) CutOnce(trigger string, afterBytes int64) {
	p.mu.Lock()
	p.trigger, p.after = trigger, afterBytes
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
	close(p.done)
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
		c := &Conn{client: client, server: server, closed: p.done}
		c.budget.Store(-1)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			return
		}
		c.n = p.accepted.Add(1)
		p.conns[c] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.upstream(c)
		go p.downstream(c)
	}
}

func (p *Proxy) forget(c *Conn) {
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// upstream forwards client→server a line at a time, arms the cut when
// the trigger passes and gives each line to Hooks.OnLine.
func (p *Proxy) upstream(c *Conn) {
	defer p.wg.Done()
	defer p.forget(c)
	r := bufio.NewReader(c.client)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			p.mu.Lock()
			if p.trigger != "" && bytes.Contains([]byte(line), []byte(p.trigger)) {
				c.budget.Store(p.after)
				p.trigger = ""
				p.cuts.Add(1)
			}
			p.mu.Unlock()
			if p.hooks.OnLine == nil || !p.hooks.OnLine(c, line) {
				if _, werr := io.WriteString(c.server, line); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// downstream forwards server→client unless muted, rewritten by
// Hooks.Rewrite and HideCapability, cutting when the budget runs out.
func (p *Proxy) downstream(c *Conn) {
	defer p.wg.Done()
	defer p.forget(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 && !c.muted.Load() {
			chunk := buf[:n]
			if p.hooks.Rewrite != nil {
				chunk = p.hooks.Rewrite(chunk)
			}
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
			c.wmu.Lock()
			_, werr := c.client.Write(chunk)
			c.wmu.Unlock()
			if werr != nil || cut {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
