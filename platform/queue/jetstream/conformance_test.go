package jetstream_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"go.uber.org/goleak"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/queue/queuetest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("PLBA_TEST_NATS_URL"); url != "" {
		keepStreamDir(url)
	}
	goleak.VerifyTestMain(m,
		// The embedded nats-server leaves package-level helpers behind.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
	)
}

// keepStreamDir makes sure the external test server keeps one file
// stream of its own, PLBATEST-KEEPDIR (tiny, left in place on purpose):
// nats-server before 2.10 (Debian's 2.9) removes the account's stream
// directory with its last stream, and a stream created meanwhile by a
// parallel test then fails ("could not create storage directory", err
// 10077). A failure here is left to the tests to report.
func keepStreamDir(url string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{Name: "PLBATEST-KEEPDIR",
		Subjects: []string{"plbatest.keepdir"}, Storage: natsjs.FileStorage, MaxMsgs: 1})
}

// testLease is the AckWait the conformance factories configure: long
// enough for a loaded 2-core machine under -race, short enough for the
// timing cases.
const testLease = time.Second

// conformanceFeatures are what the backend promises the suite.
func conformanceFeatures(reopen func(t *testing.T, old queue.Backend) queue.Backend) queuetest.Features {
	return queuetest.Features{
		FIFO:          true,
		DedupWindow:   jetstream.DefaultDuplicateWindow,
		MaxDeliveries: 3,
		Lease:         testLease,
		Slack:         3 * time.Second,
		StatsLag:      2 * time.Second,
		Reopen:        reopen,
	}
}

// embeddedConfig is a backend config on an embedded server storing under dir.
func embeddedConfig(dir string) jetstream.Config {
	return jetstream.Config{
		Mode:       jetstream.ModeEmbedded,
		MaxDeliver: 3,
		AckWait:    testLease,
		Embedded:   embedded.Config{StoreDir: dir},
	}
}

// openBackend starts a backend from cfg and closes it when t ends.
var openBackend = jetstream.OpenTestBackend

func TestConformanceEmbedded(t *testing.T) {
	t.Parallel()
	reopen := func(t *testing.T, old queue.Backend) queue.Backend {
		return openBackend(t, old.(*jetstream.Backend).Config())
	}
	queuetest.Run(t, conformanceFeatures(reopen), func(t *testing.T) queue.Backend {
		return openBackend(t, embeddedConfig(t.TempDir()))
	})
}
