package imap_test

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// taskChan is an Emitter that hands each emitted task to a channel (in a
// host the runtime's emitter enqueues them instead).
type taskChan chan *task.Task

func (c taskChan) Emit(ctx context.Context, tasks ...*task.Task) error {
	for _, t := range tasks {
		select {
		case c <- t:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// A mailbox source against the in-memory IMAP server: the mail in the
// inbox becomes one task, and completing the task flags the mail \Seen and
// moves it to "Processed".
func ExampleSource() {
	ctx := context.Background()
	srv, err := memserver.Start(ctx, memserver.Options{Username: "orders", Password: "secret"})
	if err != nil {
		panic(err)
	}
	defer func() { _ = srv.Close() }()
	raw := "From: shop@example.com\r\nTo: orders@example.com\r\nSubject: order 17\r\n" +
		"Message-ID: <17@example.com>\r\n\r\n2 x widget\r\n"
	if _, err := srv.Append("INBOX", []byte(raw)); err != nil {
		panic(err)
	}

	src, err := imap.NewSource(imap.Config{
		Host: srv.Host(), Port: srv.Port(),
		TLS:      imap.TLSNone, // plain IMAP: allowed for a loopback host only
		Username: "orders", Password: "secret",
		Queue: "mail", Kind: "mail.received",
	}, nil)
	if err != nil {
		panic(err)
	}
	defer func() { _ = src.Close() }()

	runCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	emitted := make(taskChan)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx, emitted) }()
	var t *task.Task
	select {
	case t = <-emitted:
	case <-runCtx.Done():
		panic("no mail emitted")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(t.Payload))
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Kind, t.Queue, t.Key)
	fmt.Println("uid:", t.Header(imap.HeaderUID), "message-id:", t.Header(imap.HeaderMessageID))
	fmt.Println("subject:", msg.Header.Get("Subject"))

	// The worker pool reports the task's final outcome back to its source.
	if err := src.Complete(ctx, t, task.Succeeded, ""); err != nil {
		panic(err)
	}
	// Complete only queues: wait until the source has moved the message.
	if err := src.WaitCompletions(ctx); err != nil {
		panic(err)
	}
	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	for _, box := range []string{"INBOX", "Processed"} {
		msgs, err := srv.Messages(ctx, box)
		if err != nil {
			panic(err)
		}
		for _, m := range msgs {
			fmt.Printf("%s: <%s> seen=%t\n", box, m.MessageID, m.HasFlag(goimap.FlagSeen))
		}
		fmt.Println(box, "holds", len(msgs))
	}
	// Output:
	// mail.received mail imap:INBOX:17@example.com:sha256:3ab73b69048f2a35aae1a226347b961aa3162c8d9cfa451738209d8e04880f6b
	// uid: 1 message-id: 17@example.com
	// subject: order 17
	// INBOX holds 0
	// Processed: <17@example.com> seen=true
	// Processed holds 1
}

// Validate reports every problem of a configuration at once, each under
// its key; WithDefaults fills the optional fields first.
func ExampleConfig_Validate() {
	cfg := imap.Config{
		Host:     "mail.example.com",
		TLS:      imap.TLSNone,
		Username: "orders",
		Password: "secret",
		Queue:    "mail",
	}.WithDefaults()
	fmt.Println(cfg.Port, cfg.Mailbox, cfg.Name, cfg.Mode, *cfg.OnSuccess.MoveTo)
	fmt.Println(cfg.Validate())
	// Output:
	// 143 INBOX imap/INBOX idle Processed
	// imap: invalid config: tls: "none" sends the password in clear text: only allowed for a loopback host unless allow_insecure is true (host "mail.example.com")
	// imap: invalid config: kind: required (the task kind the app handles)
}
