package netfault

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from its own loopback address to an
// upstream address until it is frozen. It is safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu        sync.Mutex
	frozen    chan struct{} // closed while forwarding; replaced when frozen
	trigger   []byte        // FreezeOn's pattern; nil when none is armed
	triggered chan struct{} // closed when the pattern froze the proxy
	conns     []net.Conn
	wg        sync.WaitGroup
}

// NewProxy listens on 127.0.0.1 at a free port and forwards each
// connection to upstream (host:port); it is closed when tb ends.
func NewProxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("netfault: listen: %v", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, frozen: make(chan struct{})}
	close(p.frozen)
	p.wg.Add(1)
	go p.accept() // owned by p: Close ends it
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port, for the client to dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
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
		go p.pipe(u, c, true)
		go p.pipe(c, u, false)
	}
}

// pipe copies from src to dst (upstream: from the client), holding what
// it read while frozen.
func (p *Proxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if upstream && p.trigger != nil && bytes.Contains(buf[:n], p.trigger) {
				p.trigger = nil
				p.freezeLocked()
				close(p.triggered)
			}
			gate := p.frozen
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// Pass the close on: src's end finished sending (EOF: dst
			// gets EOF too once it read the rest) or broke (dst is
			// closed). Held back, a server that closed would look, to
			// its client, like one that froze. While frozen, the close
			// waits too.
			p.mu.Lock()
			gate := p.frozen
			p.mu.Unlock()
			<-gate
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == io.EOF {
				_ = cw.CloseWrite()
			} else {
				_ = dst.Close()
			}
			return
		}
	}
}

// Freeze stops forwarding in both directions; the connections stay open
// and new ones are accepted but get nothing through.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.freezeLocked()
	p.mu.Unlock()
}

func (p *Proxy) freezeLocked() {
	select {
	case <-p.frozen:
		p.frozen = make(chan struct{})
	default: // frozen already
	}
}

// FreezeOn freezes the proxy (as Freeze) when a client next sends data
// that holds pattern, before that data goes upstream: to the server, the
// client stopped mid-conversation (a host that froze or lost its
// network, no FIN, no RST). The channel closes then. The pattern must
// arrive within one read.
func (p *Proxy) FreezeOn(pattern string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger, p.triggered = []byte(pattern), make(chan struct{})
	return p.triggered
}

// Thaw forwards again, first what was held while frozen.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	select {
	case <-p.frozen:
	default:
		close(p.frozen)
	}
	p.mu.Unlock()
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines. It is idempotent.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Thaw()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
