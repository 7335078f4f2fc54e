package imap

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/emersion/go-imap/v2/imapclient"
)

// meter is the connection the source gives go-imap, counting what the
// client reads from it, so that every answer of the server is bounded:
// the client parses an answer's strings (an envelope's fields, a
// mailbox name, an ESEARCH tag) into memory whole, whatever their
// length, and collects a SEARCH's UIDs whatever their number, so a
// hostile or broken server could otherwise make it read gigabytes in
// one answer, and the host's memory grow with it until the command
// timeout (or, during IDLE, with no end). Each command is armed (see
// arm) with its budget: a fetch's answerBudget, the answers that grow
// with the mailbox (SEARCH, NOOP, IDLE, EXPUNGE, MOVE...) the
// mailboxBudget; between commands (unsolicited data) the meter keeps
// answerBudget, counted from the last command's end. Bodies are bounded
// per literal by the source itself, which reads them (see fetchBodies):
// their literals are granted to the budget, and the rest of a body
// fetch's answer (a body sent as a quoted string, which go-imap reads
// whole, or items not asked for) is bounded by answerBudget. Once the
// budget is spent every read fails: go-imap closes the connection, the
// command fails, and the session ends, retried with back-off (the
// messages asked for are fetched alone next, see poison.go).
type meter struct {
	net.Conn

	base budget // between commands (see done)

	mu      sync.Mutex
	b       budget // the armed command's budget
	left    int64  // bytes it may still read
	what    string // the command, for the error
	tripped error  // set once the budget is spent: every read fails
}

// budget is what one answer may make the client read, and the rule
// that sets it, named in the error.
type budget struct {
	bytes int64
	rule  string
}

// newMeter counts what is read from conn, the greeting and the login
// bounded by base, and so every stretch between commands.
func newMeter(conn net.Conn, base budget) *meter {
	return &meter{Conn: conn, base: base, b: base, left: base.bytes, what: "greeting and answers to the login"}
}

// minAnswerBudget is the least a command's answer may make the client
// read (see answerBudget): a max_batch_bytes of a few KiB, fine for
// bodies, must not fail the metadata of an ordinary batch.
const minAnswerBudget = 4 << 20

// answerBudget is what the answer to one fetch, or a command whose
// answer does not grow with the mailbox, may make the client read:
// MaxBatchBytes, at least minAnswerBudget.
func (c Config) answerBudget() budget {
	return budget{max(c.MaxBatchBytes, minAnswerBudget), fmt.Sprintf("max_batch_bytes, at least %d", minAnswerBudget)}
}

// bytesPerUID is what a UID may take in a SEARCH answer: ten digits
// and a space, and one for good measure. A server without ESEARCH lists
// every UID found (about 8 MB per million UIDs).
const bytesPerUID = 12

// mailboxBudget is what the answer to a command that may grow with the
// selected mailbox on c (a SEARCH lists its UIDs; NOOP, IDLE, EXPUNGE,
// MOVE carry a line per message expunged or changed) may make the
// client read: bytesPerUID for each UID the mailbox can hold (see
// uidLimit: twice the messages it announced and 1024, at most
// maxSearchUIDs, so at most 192 MiB), at least answerBudget.
func (c Config) mailboxBudget(cl *imapclient.Client) budget {
	a := c.answerBudget()
	n := int64(bytesPerUID * uidLimit(cl))
	if n <= a.bytes {
		return a
	}
	return budget{n, fmt.Sprintf("%d bytes per UID the mailbox can hold, twice its messages and 1024, at most %d", bytesPerUID, maxSearchUIDs)}
}

// errTooLarge marks an error of a command whose answer exceeded its
// byte budget (see meter).
var errTooLarge = errors.New("answer too large")

func (m *meter) Read(p []byte) (int, error) {
	m.mu.Lock()
	err := m.tripped
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := m.Conn.Read(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	if n > 0 && m.b.bytes > 0 {
		m.left -= int64(n)
		if m.left < 0 {
			m.tripped = fmt.Errorf("%w: the server's %s exceeded %d bytes (%s); connection closed", errTooLarge, m.what, m.b.bytes, m.b.rule)
			_ = m.Conn.Close()
			return 0, m.tripped
		}
	}
	return n, err
}

// arm bounds what the command about to be sent (what) may make the
// client read to b, until done. A nil meter does nothing.
func (m *meter) arm(what string, b budget) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.what, m.b, m.left = "answer to the "+what, b, b.bytes
	m.mu.Unlock()
}

// grant lets the armed command read n bytes more: a literal the source
// reads itself, bounding what it keeps of it (see fetchBodies). A nil
// meter does nothing.
func (m *meter) grant(n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.left += n
	m.mu.Unlock()
}

// done ends the armed command: until the next one, what the server
// sends is bounded by the base budget. It returns err, or, when the
// budget was spent, the error saying so (go-imap's error, err, only
// repeats it).
func (m *meter) done(err error) error {
	if m == nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.what, m.b, m.left = "data sent between commands", m.base, m.base.bytes
	if m.tripped != nil {
		return m.tripped
	}
	return err
}
