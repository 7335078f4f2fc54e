package jetstream_test

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/queue/queuetest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("PLBA_TEST_NATS_URL"); url != "" {
		natstest.KeepStreamDir(url)
	}
	goleak.VerifyTestMain(m,
		// The embedded nats-server leaves package-level helpers behind.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
	)
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
		LeaveDead: func(t *testing.T, b queue.Backend, q, id string, redrive bool) {
			jetstream.LeaveDead(t, b.(*jetstream.Backend), q, id, redrive)
		},
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
