package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// UniquePrefix is uniquePrefix for the package's external tests.
var UniquePrefix = uniquePrefix

// DeleteStreams is deleteStreams for the package's external tests.
var DeleteStreams = deleteStreams

// uniquePrefix returns a stream prefix no other run uses.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	var b [5]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "PLBATEST-" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// deleteStreams deletes the streams of the server at url whose names
// start with prefix (those of an external server outlive the test). It
// connects on its own: registered as a cleanup before a test opens its
// backends, it runs once they are closed.
func deleteStreams(t testing.TB, url, prefix string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("cleanup: connect to %s: %v", url, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var drop []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix+"_") || strings.HasPrefix(n, prefix+"-") {
			drop = append(drop, n)
		}
	}
	if err := names.Err(); err != nil {
		t.Errorf("cleanup: list streams: %v", err)
	}
	for _, n := range drop {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Errorf("cleanup: delete stream %s: %v", n, err)
		}
	}
}
