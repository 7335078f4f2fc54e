package mailorder

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap/memserver"
)

// Demo is the embedded demo mailbox: an in-memory IMAP server on loopback
// whose INBOX holds sample order mails.
type Demo struct {
	srv   *memserver.Server
	stats sample.Stats
}

// StartDemo starts the in-memory IMAP server on cfg.Listen and appends
// cfg.Mails sample mails (see package sample) to its INBOX. Their
// Message-IDs name this start (a UTC time stamp): the mailbox is new on
// every start, and so are its mails, so a durable queue that remembers
// the keys of an earlier run does not take them for redeliveries. Close it
// when done. ctx bounds the start.
func StartDemo(ctx context.Context, cfg DemoConfig, log *zap.Logger) (*Demo, error) {
	if log == nil {
		log = zap.NewNop()
	}
	srv, err := memserver.Start(ctx, memserver.Options{
		Listen: cfg.Listen, Username: cfg.Username, Password: cfg.Password, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("mailorder: demo mailbox: %w", err)
	}
	run := time.Now().UTC().Format("20060102t150405.000")
	for i := 0; i < cfg.Mails; i++ {
		if _, err := srv.Append("INBOX", sample.MailIn(run, i)); err != nil {
			_ = srv.Close()
			return nil, fmt.Errorf("mailorder: demo mailbox: seed mail %d: %w", i, err)
		}
	}
	return &Demo{srv: srv, stats: sample.Count(cfg.Mails)}, nil
}

// Server is the running IMAP server (to append more mail, or to look at
// the folders).
func (d *Demo) Server() *memserver.Server { return d.srv }

// Seeded summarises the sample mails put in the INBOX at start.
func (d *Demo) Seeded() sample.Stats { return d.stats }

// Close stops the server. It is idempotent.
func (d *Demo) Close() error { return d.srv.Close() }

func (d *Demo) addr() demoAddr {
	if d == nil {
		return demoAddr{}
	}
	return demoAddr{host: d.srv.Host(), port: d.srv.Port()}
}
