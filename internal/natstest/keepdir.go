// Package natstest holds what the tests of several packages need when they
// share one external NATS server (PLBA_TEST_NATS_URL).
package natstest

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KeepStreamName is the stream KeepStreamDir leaves on the server.
const KeepStreamName = "PLBATEST-KEEPDIR"

// KeepStreamDir makes sure the server at url keeps one file stream of its
// own, KeepStreamName (one message at most, left in place on purpose):
// nats-server before 2.10 (Debian's 2.9) removes the account's stream
// directory with its last stream, and a stream or key-value bucket that a
// test of another package creates meanwhile then fails ("could not create
// storage directory", err 10077). Every package whose tests create
// streams on the shared server calls it before them; it is idempotent. A
// failure is left to the tests to report.
func KeepStreamDir(url string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: KeepStreamName,
		Subjects: []string{"plbatest.keepdir"}, Storage: jetstream.FileStorage, MaxMsgs: 1})
}
