package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// unanswered is a memory backend whose DeadLetter never gets an answer,
// as a JetStream dead letter whose publish went to a stream leader that
// lost its followers: it waits until its ctx ends.
type unanswered struct {
	*memory.Backend
	entered chan struct{}
	ended   chan error
}

func (b unanswered) DeadLetter(ctx context.Context, _ *queue.Delivery, _ string) error {
	close(b.entered)
	<-ctx.Done()
	b.ended <- ctx.Err()
	return fmt.Errorf("publish the dead letter: %w", ctx.Err())
}

// TestStopCutsShortASettlementInProgress: a dead letter that began before
// Stop and gets no answer ends with Stop's ctx, not with the delivery's
// lease (30 s): Stop returns within its ctx and says what it cut short,
// and the source is told nothing (the task is left to the backend, which
// delivers it again). Before, the settlement ran on for its lease after
// Stop returned, and Stop's error named only a worker still settling.
func TestStopCutsShortASettlementInProgress(t *testing.T) {
	t.Parallel()
	mem := memory.New(memory.Options{})
	t.Cleanup(func() {
		// The delivery stays unsettled until its lease ends.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = mem.Close(ctx)
	})
	be := unanswered{Backend: mem, entered: make(chan struct{}), ended: make(chan error, 1)}
	src := &inbox{emit: []string{"o1"}}
	cfg := fast
	cfg.Lease = 30 * time.Second
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": cfg},
		Routes: []task.Route{{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			return task.Permanentf("not an order")
		})}},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	<-be.entered

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	began := time.Now()
	err = rt.Stop(ctx)
	require.Less(t, time.Since(began), time.Second, "Stop overran its ctx")
	require.ErrorContains(t, err, "1 settlements cut short")
	select {
	case cerr := <-be.ended:
		require.ErrorIs(t, cerr, context.Canceled, "the settlement ended with Stop's ctx")
	default:
		t.Fatal("the settlement still runs after Stop returned")
	}
	require.Empty(t, src.snapshot(), "the source was told an outcome that did not happen")
}
