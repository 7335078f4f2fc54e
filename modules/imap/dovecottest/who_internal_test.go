package dovecottest

import (
	"errors"
	"testing"
)

// doveadm who -1's table becomes the IMAP sessions with their titles; a
// session whose process ended meanwhile and other protocols are left out.
func TestParseWho(t *testing.T) {
	t.Parallel()
	out := `username                          proto pid   ip       
orders                            imap  11254 127.0.0.1
orders                            imap  11256 127.0.0.1
orders                            imap  11260 127.0.0.1
orders                            pop3  11270 127.0.0.1
`
	titles := map[int]string{
		11254: "dovecot/imap [orders 127.0.0.1 IDLE]",
		11256: "dovecot/imap [orders 127.0.0.1]",
	}
	ss, err := parseWho(out, func(pid int) (string, error) {
		if t, ok := titles[pid]; ok {
			return t, nil
		}
		return "", errors.New("no such process")
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 {
		t.Fatalf("got %d sessions, want 2: %+v", len(ss), ss)
	}
	if s := ss[0]; s.PID != 11254 || s.User != "orders" || s.IP != "127.0.0.1" || !s.Idle() {
		t.Errorf("first session: %+v, idle %v", s, s.Idle())
	}
	if s := ss[1]; s.PID != 11256 || s.Idle() {
		t.Errorf("second session: %+v, idle %v", s, s.Idle())
	}

	if ss, err := parseWho("username proto pid ip\n", nil); err != nil || len(ss) != 0 {
		t.Errorf("nobody logged in: %+v, %v", ss, err)
	}
	if _, err := parseWho("username proto pid ip\norders imap x 127.0.0.1\n", nil); err == nil {
		t.Error("a pid that is not a number is an error")
	}
	if _, err := parseWho("username proto pid ip\norders imap\n", nil); err == nil {
		t.Error("a short line is an error")
	}
}
