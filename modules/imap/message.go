package imap

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/plba/plba/platform/task"
)

// A message as the scan knows it (meta), and the task it becomes: its
// key and headers (the stand-ins, made in standin.go, are built on it).

// meta is what the first, cheap fetch of a batch learns of a message.
type meta struct {
	uid   imap.UID
	size  int64
	msgID string
	date  time.Time
}

// key is the stable task key of a message: its Message-ID (when it has
// one) and the SHA-256 of its raw bytes. The hash keeps two different
// messages that share a Message-ID (a sender reusing ids, a corrected
// mail) apart, and it is the same for the same message wherever and
// whenever it is fetched, so a restart or a re-emission reuses the key.
func (s *Source) key(msgID string, raw []byte) string {
	sum := sha256.Sum256(raw)
	h := "sha256:" + hex.EncodeToString(sum[:])
	if msgID != "" {
		return "imap:" + s.cfg.Mailbox + ":" + msgID + ":" + h
	}
	return "imap:" + s.cfg.Mailbox + ":" + h
}

func (s *Source) newTask(m meta, validity uint32, raw []byte) *task.Task {
	t := &task.Task{
		Kind:    s.cfg.Kind,
		Queue:   s.cfg.Queue,
		Payload: raw,
		Key:     s.key(m.msgID, raw),
		Headers: map[string]string{
			HeaderUID:             strconv.FormatUint(uint64(m.uid), 10),
			HeaderUIDValidity:     strconv.FormatUint(uint64(validity), 10),
			HeaderMailbox:         s.cfg.Mailbox,
			HeaderMessageID:       m.msgID,
			HeaderSize:            strconv.Itoa(len(raw)),
			task.HeaderCompletion: s.cfg.Name,
		},
	}
	if !m.date.IsZero() {
		t.Headers[HeaderInternalDate] = m.date.UTC().Format(time.RFC3339)
	}
	return t
}

// maxMessageID is the longest Message-ID the source keeps: a mail header
// line holds at most 998 characters (RFC 5322).
const maxMessageID = 998

// usableMessageID returns id, or "" (no Message-ID) when it is longer
// than maxMessageID or holds a control character. It goes into the
// task's key and a header: a queue bounds both (JetStream: 64 KiB of
// headers, and no line break in a value), and a task it refuses for
// good, its rejected stand-in too, would leave the mail unprocessed for
// ever. Without it the task is keyed by the content's hash and its
// completion finds the mail by UID.
func usableMessageID(id string) string {
	if len(id) > maxMessageID {
		return ""
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return id
}
