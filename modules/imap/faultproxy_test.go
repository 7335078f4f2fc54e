package imap_test

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
)

// faultHooks say what a faultProxy does to the conversations it forwards.
// They are called from the proxy's goroutines, one per connection and
// direction, so they must be safe for concurrent use.
type faultHooks struct {
	// onLine sees every line a client sends (CRLF included) before it is
	// forwarded; returning true drops it (the hook answered it itself
	// with faultConn.reply). It may block, until faultConn.closed at most.
	onLine func(c *faultConn, line string) (handled bool)
	// rewrite changes what the server sends (nil: unchanged). Tokens
	// split across two reads are missed: keep it to small conversations.
	rewrite func([]byte) []byte
}

// faultProxy is a TCP proxy in front of an IMAP server that reads the
// client's side line by line, so that a test can answer a command in the
// server's stead, hold it back, or make the server go silent. It closes
// when the test ends, ending every goroutine it started.
type faultProxy struct {
	ln     net.Listener
	target string
	hooks  faultHooks
	closed chan struct{}

	mu    sync.Mutex
	conns map[*faultConn]struct{}
	n     atomic.Int64
	wg    sync.WaitGroup
}

// faultConn is one proxied connection.
type faultConn struct {
	// n numbers the connections in the order accepted, from 1.
	n      int64
	client net.Conn
	server net.Conn
	// closed is closed when the proxy closes.
	closed <-chan struct{}
	wmu    sync.Mutex // serializes writes to client
	muted  atomic.Bool
	once   sync.Once
}

// reply sends s to the client as if the server had.
func (c *faultConn) reply(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = io.WriteString(c.client, s)
}

// mute drops everything the server sends from now on: the server seems
// to hang while the TCP connection stays up.
func (c *faultConn) mute() { c.muted.Store(true) }

func (c *faultConn) close() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

func newFaultProxy(t *testing.T, target string, hooks faultHooks) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{ln: ln, target: target, hooks: hooks, closed: make(chan struct{}), conns: map[*faultConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) Host() string { return "127.0.0.1" }

func (p *faultProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// accepted is how many connections the proxy has accepted.
func (p *faultProxy) accepted() int64 { return p.n.Load() }

func (p *faultProxy) close() {
	close(p.closed)
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) accept() {
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
		c := &faultConn{client: client, server: server, closed: p.closed}
		p.mu.Lock()
		select {
		case <-p.closed:
			p.mu.Unlock()
			c.close()
			return
		default:
		}
		c.n = p.n.Add(1)
		p.conns[c] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.upstream(c)
		go p.downstream(c)
	}
}

func (p *faultProxy) forget(c *faultConn) {
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// upstream forwards client→server, a line at a time.
func (p *faultProxy) upstream(c *faultConn) {
	defer p.wg.Done()
	defer p.forget(c)
	r := bufio.NewReader(c.client)
	for {
		line, err := r.ReadString('\n')
		if line != "" && (p.hooks.onLine == nil || !p.hooks.onLine(c, line)) {
			if _, werr := io.WriteString(c.server, line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// downstream forwards server→client unless muted.
func (p *faultProxy) downstream(c *faultConn) {
	defer p.wg.Done()
	defer p.forget(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 && !c.muted.Load() {
			chunk := buf[:n]
			if p.hooks.rewrite != nil {
				chunk = p.hooks.rewrite(chunk)
			}
			c.wmu.Lock()
			_, werr := c.client.Write(chunk)
			c.wmu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// command splits a client line into its tag and upper-cased command name
// ("UID FETCH" for UID commands) and the rest.
func command(line string) (tag, name, rest string) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", "", ""
	}
	tag, name = f[0], strings.ToUpper(f[1])
	i := 2
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(f[2])
		i = 3
	}
	return tag, name, strings.Join(f[i:], " ")
}

// uidSetHas reports whether the IMAP sequence set s ("1:3,7", "5:*")
// names uid.
func uidSetHas(s string, uid goimap.UID) bool {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if hi == "*" {
				b = 1<<32 - 1
			} else if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				continue
			}
		}
		if a > b {
			a, b = b, a
		}
		if uint64(uid) >= a && uint64(uid) <= b {
			return true
		}
	}
	return false
}
