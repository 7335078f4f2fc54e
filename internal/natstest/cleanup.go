package natstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeleteStreamsAtCleanup deletes, when t ends, every stream of the server
// at url whose name contains id (a test's stream prefix, and the buckets
// it names after it): a stream left behind keeps what it reserves (a
// dead-letter stream reserves its max_bytes), and enough of them make the
// shared server refuse new streams ("insufficient storage resources").
func DeleteStreamsAtCleanup(t testing.TB, url, id string) {
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Logf("cleanup: connect: %v", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var del []string
		names := js.StreamNames(ctx)
		for n := range names.Name() {
			if strings.Contains(n, id) {
				del = append(del, n)
			}
		}
		for _, n := range del {
			if err := js.DeleteStream(ctx, n); err != nil {
				t.Logf("cleanup: delete stream %s: %v", n, err)
			}
		}
	})
}
