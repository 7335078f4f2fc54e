package memserver_test

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/modules/imap/memserver"
)

// An in-memory IMAP server on a free loopback port, with a mail appended
// to its INBOX: point an imap source (or any IMAP client) at Host and
// Port, with the Options' account.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := memserver.Start(ctx, memserver.Options{Username: "orders", Password: "secret"})
	if err != nil {
		panic(err)
	}
	defer func() { _ = srv.Close() }()

	raw := "From: shop@example.com\r\nSubject: order 17\r\nMessage-ID: <17@example.com>\r\n\r\n2 x widget\r\n"
	if _, err := srv.Append("INBOX", []byte(raw)); err != nil {
		panic(err)
	}
	msgs, err := srv.Messages(ctx, "INBOX")
	if err != nil {
		panic(err)
	}
	fmt.Println(srv.Host(), srv.Port() > 0, len(msgs), msgs[0].MessageID)
	// Output: 127.0.0.1 true 1 17@example.com
}
