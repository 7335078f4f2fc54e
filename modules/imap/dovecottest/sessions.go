package dovecottest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Session is one logged-in IMAP session as Dovecot shows it.
type Session struct {
	// PID is the session's imap process.
	PID int
	// User is the logged-in user; IP the client's address.
	User, IP string
	// Title is the process title, such as "dovecot/imap [orders 127.0.0.1
	// IDLE]": the command the session is in, when it is in one.
	Title string
}

// Idle reports whether the session is in an IDLE command (watching the
// mailbox for new mail).
func (s Session) Idle() bool { return strings.HasSuffix(s.Title, " IDLE]") }

// Sessions lists the IMAP sessions logged in to the server now, from
// doveadm who (one line per connection) and each session's process title.
// A session that ends while it is being listed is left out.
func (s *Server) Sessions(ctx context.Context) ([]Session, error) {
	out, err := exec.CommandContext(ctx, "doveadm", "-c", s.conf, "who", "-1").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("dovecottest: doveadm who: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("dovecottest: doveadm who: %w", err)
	}
	return parseWho(string(out), func(pid int) (string, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " "), err
	})
}

// parseWho reads doveadm who -1's table (a header, then "user proto pid
// ip" per connection), with title giving a process's title.
func parseWho(out string, title func(pid int) (string, error)) ([]Session, error) {
	var ss []Session
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue // the header
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("dovecottest: doveadm who: unexpected line %q", line)
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("dovecottest: doveadm who: pid in %q: %w", line, err)
		}
		if f[1] != "imap" {
			continue
		}
		t, err := title(pid)
		if err != nil {
			continue // ended meanwhile
		}
		ss = append(ss, Session{PID: pid, User: f[0], IP: f[3], Title: t})
	}
	return ss, nil
}

// Kick disconnects every IMAP session of user (doveadm kick): each one is
// sent "* BYE" and its connection closed, as at a server's shutdown.
func (s *Server) Kick(ctx context.Context, user string) error {
	out, err := exec.CommandContext(ctx, "doveadm", "-c", s.conf, "kick", user).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dovecottest: doveadm kick %s: %w: %s", user, err, out)
	}
	return nil
}
