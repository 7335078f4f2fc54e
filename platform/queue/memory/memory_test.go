package memory_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Features{FIFO: true}, func(t *testing.T) queue.Backend {
		return memory.New(memory.Options{})
	})
}

func TestConformanceMaxDeliveriesAndDedupWindow(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Features{FIFO: true, MaxDeliveries: 2, DedupWindow: time.Minute},
		func(t *testing.T) queue.Backend {
			return memory.New(memory.Options{MaxDeliveries: 2, DedupWindow: time.Minute})
		})
}
