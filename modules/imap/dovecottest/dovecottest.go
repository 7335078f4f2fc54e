// Package dovecottest runs a real Dovecot 2.3 IMAP server for a test:
// Debian's dovecot-imapd, with a configuration written into the test's
// temporary directory (a passwd-file user, Maildir storage, plain IMAP on
// a free 127.0.0.1 port, its log in the same directory). Each Server is
// the test's own: it is stopped when the test ends.
//
// The tests that use it run only when PLBA_TEST_DOVECOT=1; otherwise Start
// skips the test, saying so. Dovecot may run as root (the mail is then
// owned by nobody) or as an ordinary user.
package dovecottest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvVar enables the tests that need Dovecot.
const EnvVar = "PLBA_TEST_DOVECOT"

// The account of every Server.
const (
	Username = "orders"
	Password = "secret"
)

// Server is one Dovecot instance.
type Server struct {
	tb   testing.TB
	dir  string
	conf string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan error // the running master's exit, nil when stopped
}

// Start starts a Dovecot instance for tb and stops it when tb ends. It
// skips tb unless PLBA_TEST_DOVECOT=1, and fails it when the dovecot
// binary is missing (install the dovecot-imapd package). Each of conf is
// a line added to the configuration (such as "imap_idle_notify_interval
// = 1 secs").
func Start(tb testing.TB, conf ...string) *Server {
	tb.Helper()
	if os.Getenv(EnvVar) != "1" {
		tb.Skipf("set %s=1 to run the tests against a real Dovecot (apt-get install dovecot-imapd)", EnvVar)
	}
	if _, err := exec.LookPath("dovecot"); err != nil {
		tb.Fatalf("dovecottest: %s=1 but no dovecot binary: apt-get install dovecot-imapd (%v)", EnvVar, err)
	}
	dir := tb.TempDir()
	s := &Server{tb: tb, dir: dir, conf: filepath.Join(dir, "dovecot.conf"), port: freePort(tb)}
	if err := s.writeConfig(conf); err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	tb.Cleanup(func() { s.Stop() })
	s.Resume()
	return s
}

// Host is the server's address (127.0.0.1).
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the server's IMAP port.
func (s *Server) Port() int { return s.port }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.port)) }

// LogPath is Dovecot's log file.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "dovecot.log") }

func (s *Server) writeConfig(extra []string) error {
	mail := filepath.Join(s.dir, "mail")
	if err := os.MkdirAll(mail, 0o777); err != nil {
		return err
	}
	users := fmt.Sprintf("%s:{PLAIN}%s\n", Username, Password)
	if err := os.WriteFile(filepath.Join(s.dir, "passwd"), []byte(users), 0o644); err != nil {
		return err
	}
	// Dovecot refuses to give mail access to root: as root, the mail is
	// nobody's, and nobody must reach the temporary directory.
	mailUser := ""
	if os.Geteuid() == 0 {
		mailUser = "mail_uid = nobody\nmail_gid = nogroup\n"
		for _, d := range []string{filepath.Dir(s.dir), s.dir, mail} {
			if err := os.Chmod(d, 0o777); err != nil {
				return err
			}
		}
	} else {
		u, err := user.Current()
		if err != nil {
			return err
		}
		mailUser = fmt.Sprintf("default_internal_user = %s\ndefault_login_user = %s\n", u.Username, u.Username)
	}
	conf := fmt.Sprintf(`# written by dovecottest
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u
first_valid_uid = 1
mail_max_userip_connections = 100
verbose_proctitle = yes
%[2]s
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = home=%[1]s/mail/%%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[3]d
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`, s.dir, mailUser, s.port)
	for _, line := range extra {
		conf += line + "\n"
	}
	return os.WriteFile(s.conf, []byte(conf), 0o644)
}

// Resume starts the master process (again, after Stop) on the same port
// and waits until it greets.
func (s *Server) Resume() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command("dovecot", "-F", "-c", s.conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.OpenFile(filepath.Join(s.dir, "master.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatalf("dovecottest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		s.tb.Fatalf("dovecottest: start dovecot: %v", err)
	}
	exit := make(chan error, 1)
	go func() { // owned by the Server: Stop waits for it
		exit <- cmd.Wait()
		out.Close()
	}()
	s.cmd, s.exit = cmd, exit
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4)
			_, err = c.Read(buf)
			c.Close()
			if err == nil && string(buf) == "* OK" {
				return
			}
		}
		select {
		case err := <-exit:
			s.cmd, s.exit = nil, nil
			log, _ := os.ReadFile(s.LogPath())
			master, _ := os.ReadFile(filepath.Join(s.dir, "master.out"))
			s.tb.Fatalf("dovecottest: dovecot exited at start: %v\n%s\n%s", err, master, log)
		default:
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("dovecottest: dovecot does not answer on %s after 20s", s.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM to the master, which ends its
// processes, then SIGKILL to the group after 10 s). The mail stays; Resume
// starts it again. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exit
	}
	// The master's children end with it; make sure none keeps the port.
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd, s.exit = nil, nil
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("dovecottest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
