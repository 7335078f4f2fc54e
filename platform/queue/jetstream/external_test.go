package jetstream_test

import (
	"os"
	"strings"
	"testing"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/queue/queuetest"
)

// externalURL returns PLBA_TEST_NATS_URL or skips t.
func externalURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PLBA_TEST_NATS_URL")
	if u == "" {
		t.Skip("PLBA_TEST_NATS_URL not set")
	}
	return u
}

// onEachServer runs test as the parallel subtests "embedded" (a server in
// the process, its store in a temporary directory) and "external"
// (PLBA_TEST_NATS_URL's, skipped when unset). config completes cfg for
// the subtest's server: on the external one under a stream prefix of its
// own, whose streams are deleted when the test ends.
func onEachServer(t *testing.T, cfg jetstream.Config, test func(t *testing.T, config func(t *testing.T) jetstream.Config)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		test(t, func(t *testing.T) jetstream.Config {
			c := cfg
			c.Mode, c.Embedded = jetstream.ModeEmbedded, embedded.Config{StoreDir: t.TempDir()}
			return c
		})
	})
	t.Run("external", func(t *testing.T) {
		url := externalURL(t)
		t.Parallel()
		test(t, func(t *testing.T) jetstream.Config {
			prefix := jetstream.UniquePrefix(t)
			t.Cleanup(func() { jetstream.DeleteStreams(t, url, prefix) })
			c := cfg
			c.URL, c.StreamPrefix = url, prefix
			return c
		})
	})
}

func TestConformanceExternal(t *testing.T) {
	url := externalURL(t)
	t.Parallel()
	cfgFor := func(t *testing.T) jetstream.Config {
		prefix := jetstream.UniquePrefix(t)
		t.Cleanup(func() { jetstream.DeleteStreams(t, url, prefix) })
		return jetstream.Config{URL: url, StreamPrefix: prefix, MaxDeliver: 3, AckWait: testLease}
	}
	reopen := func(t *testing.T, old queue.Backend) queue.Backend {
		return openBackend(t, old.(*jetstream.Backend).Config())
	}
	queuetest.Run(t, conformanceFeatures(reopen), func(t *testing.T) queue.Backend {
		b := openBackend(t, cfgFor(t))
		// The suite's 1 MiB payload plus headers exceeds the default
		// max_payload (1 MiB) of a stock server; that is the server's
		// configuration, not the backend's limit.
		if strings.HasSuffix(t.Name(), "/LargePayload") && b.MaxPayload() < 2<<20 {
			t.Skipf("server max_payload is %d bytes", b.MaxPayload())
		}
		// Before 2.12 a server has no message schedules: NotBefore tasks
		// wait in the queue as ready messages until a consumer pulls them,
		// so Stats cannot tell them from ready ones.
		if strings.HasSuffix(t.Name(), "/Stats") && !b.Status().Schedules {
			t.Skipf("server %s has no message schedules", b.Status().ServerVersion)
		}
		return b
	})
}
