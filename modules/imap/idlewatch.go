package imap

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrIdleEnded is the session error when the server ended an IDLE on its
// own: a tagged response to the IDLE before the source sent DONE (some
// servers do so at an IDLE timeout of their own), or an untagged BYE.
// The server then pushes nothing more, and a DONE would reach a server
// that is no longer idling (it answers with a tagged BAD the client
// cannot match); so the source drops the connection and starts over,
// with its reconnect back-off (Config.Reconnect): at once after a long
// IDLE, slower and slower when the server ends every IDLE at once. Run
// retries it; it is never returned by Run.
var ErrIdleEnded = errors.New("imap: the server ended IDLE on its own")

// idleWatch notices the server ending an IDLE on its own: the go-imap
// client does not tell (its IDLE command goes on "running" until Close).
// It reads the conversation as the client's debug writer
// (imapclient.Options.DebugWriter), which receives every byte the client
// reads from the server and every byte it writes. Disarmed, it drops
// them at once (credentials included: nothing is kept). Armed (from just
// before the IDLE command is sent until before the source ends it), it
// follows the server's responses line by line, literals skipped, and
// fires at the first tagged status response (OK, NO or BAD: during IDLE
// no other command is pending, so it answers the IDLE) or BYE. The
// client's own lines while armed are no status response: "<tag> IDLE",
// and the "DONE" with which the client renews the IDLE itself (go-imap
// does every 28 minutes), whose answer is therefore not an end either.
type idleWatch struct {
	armed atomic.Bool
	ended chan struct{} // buffered 1: fired

	mu     sync.Mutex
	head   []byte // the first bytes of the current response
	headed bool   // head is complete: the response's first line ended
	tail   []byte // the last bytes of the current line, for a literal
	skip   int64  // literal bytes still to skip
	why    string // the status of the response that ended the IDLE
	done   bool   // the client sent DONE: the next tagged response answers it
}

const (
	// maxHead holds a response's tag and status ("T123 BAD ").
	maxHead = 16
	// maxTail holds "{<digits>}\r\n" for any literal size.
	maxTail = 24
)

func newIdleWatch() *idleWatch { return &idleWatch{ended: make(chan struct{}, 1)} }

// arm starts watching at the start of a response line: the previous
// command's responses have been read by then.
func (w *idleWatch) arm() {
	w.mu.Lock()
	w.head, w.headed, w.tail, w.skip, w.why, w.done = w.head[:0], false, w.tail[:0], 0, "", false
	w.mu.Unlock()
	select {
	case <-w.ended:
	default:
	}
	w.armed.Store(true)
}

// disarm stops watching (before the source sends DONE itself).
func (w *idleWatch) disarm() { w.armed.Store(false) }

// reason returns the status that ended the IDLE ("OK", "NO", "BAD" or
// "BYE"), once ended fired.
func (w *idleWatch) reason() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.why
}

// Write is the debug writer; it never fails.
func (w *idleWatch) Write(p []byte) (int, error) {
	if !w.armed.Load() {
		return len(p), nil
	}
	n := len(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(p) > 0 {
		if w.skip > 0 {
			k := int(min(w.skip, int64(len(p))))
			p, w.skip = p[k:], w.skip-int64(k)
			continue
		}
		seg := p
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			seg = p[:i+1]
		}
		p = p[len(seg):]
		if !w.headed {
			w.head = append(w.head, seg[:min(len(seg), maxHead-len(w.head))]...)
		}
		w.tail = append(w.tail, seg[max(0, len(seg)-maxTail):]...)
		w.tail = w.tail[max(0, len(w.tail)-maxTail):]
		if i < 0 {
			break
		}
		if !w.headed {
			w.headed = true
			w.judge()
		}
		if size, ok := literalSize(w.tail); ok {
			w.skip, w.tail = size, w.tail[:0] // the response goes on after it
			continue
		}
		w.head, w.headed, w.tail = w.head[:0], false, w.tail[:0]
	}
	return n, nil
}

// judge fires when head begins a tagged status response or a BYE, but
// for the answer to the client's DONE.
func (w *idleWatch) judge() {
	if bytes.EqualFold(bytes.TrimRight(w.head, "\r\n"), []byte("DONE")) {
		w.done = true
		return
	}
	tag, rest, ok := bytes.Cut(w.head, []byte(" "))
	if !ok || len(tag) == 0 || tag[0] == '+' {
		return
	}
	status, _, _ := bytes.Cut(bytes.TrimRight(rest, "\r\n"), []byte(" "))
	s := string(bytes.ToUpper(status))
	if string(tag) == "*" {
		if s != "BYE" {
			return
		}
	} else if s != "OK" && s != "NO" && s != "BAD" {
		return
	} else if w.done {
		w.done = false // the IDLE the client ended; a new one follows
		return
	}
	if w.why == "" {
		w.why = s
	}
	select {
	case w.ended <- struct{}{}:
	default:
	}
}

// literalSize reports the size of the literal line announces: it ends
// with "{N}\r\n" (or "{N}\n").
func literalSize(line []byte) (int64, bool) {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line[open+1:len(line)-1]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
