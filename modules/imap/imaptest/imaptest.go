package imaptest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plba/plba/modules/imap/memserver"
)

// Default credentials of NewServer.
const (
	Username = "user"
	Password = "secret"
)

// NewServer starts a memserver on 127.0.0.1:0 with opts (Username and
// Password default to the package constants) and closes it when the test
// ends.
func NewServer(tb testing.TB, opts memserver.Options) *memserver.Server {
	tb.Helper()
	if opts.Username == "" {
		opts.Username = Username
	}
	if opts.Password == "" {
		opts.Password = Password
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := memserver.Start(ctx, opts)
	if err != nil {
		tb.Fatalf("imaptest: start server: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Message returns a small text/plain RFC 5322 message. An empty id leaves
// the Message-ID header out.
func Message(id, subject, body string) []byte {
	var b strings.Builder
	b.WriteString("From: Sender <sender@example.com>\r\n")
	b.WriteString("To: Orders <orders@example.com>\r\n")
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	b.WriteString("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n")
	if id != "" {
		fmt.Fprintf(&b, "Message-ID: <%s>\r\n", id)
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	b.WriteString("\r\n")
	return []byte(b.String())
}
