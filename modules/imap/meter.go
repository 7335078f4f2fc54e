package imap

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// meter is the connection the source gives go-imap, counting what the
// client reads from it, so that a command's answer can be bounded: the
// client parses an answer's strings (an envelope's fields) into memory
// whole, whatever their length, so a hostile or broken server could
// otherwise make it read a literal of gigabytes in one metadata fetch,
// and the host's memory grow with it until the command timeout. Bodies
// are bounded per literal by the source itself, which reads them (see
// fetchBodies): their literals are granted to the budget, and the rest
// of a body fetch's answer (a body sent as a quoted string, which
// go-imap reads whole, or items not asked for) is bounded by
// answerBudget, as a metadata fetch's answer is (see fetchMetaOf). Once the budget is spent every read fails: go-imap
// closes the connection, the command fails, and the session ends,
// retried with back-off (the messages asked for are fetched alone next,
// see poison.go).
type meter struct {
	net.Conn

	mu      sync.Mutex
	limit   int64  // the armed command's budget; 0: none
	left    int64  // bytes it may still read
	what    string // the command, for the error
	tripped error  // set once the budget is spent: every read fails
}

// minAnswerBudget is the least a command's answer may make the client
// read (see answerBudget): a max_batch_bytes of a few KiB, fine for
// bodies, must not fail the metadata of an ordinary batch.
const minAnswerBudget = 4 << 20

// answerBudget is what the answer to one metadata fetch may make the
// client read: MaxBatchBytes, at least minAnswerBudget.
func (c Config) answerBudget() int64 { return max(c.MaxBatchBytes, minAnswerBudget) }

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
	if m.limit > 0 && n > 0 {
		m.left -= int64(n)
		if m.left < 0 {
			m.tripped = fmt.Errorf("%w: the server's answer to a %s exceeded %d bytes (max_batch_bytes, at least %d); connection closed", errTooLarge, m.what, m.limit, minAnswerBudget)
			_ = m.Conn.Close()
			return 0, m.tripped
		}
	}
	return n, err
}

// arm bounds what the command about to be sent (what) may make the
// client read to limit bytes, until done. A nil meter does nothing.
func (m *meter) arm(what string, limit int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.what, m.limit, m.left = what, limit, limit
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
	if m.limit > 0 {
		m.left += n
	}
	m.mu.Unlock()
}

// done lifts the budget and returns err, or, when the budget was spent,
// the error saying so (go-imap's error, err, only repeats it).
func (m *meter) done(err error) error {
	if m == nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limit = 0
	if m.tripped != nil {
		return m.tripped
	}
	return err
}
