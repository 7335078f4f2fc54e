package plbatest_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/plbatest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

type orderArgs struct {
	ID    string `json:"id"`
	Cents int    `json:"cents"`
}

type receiptArgs struct {
	Order string `json:"order"`
	To    string `json:"to"`
}

var (
	placeOrder  = task.Define[orderArgs]("order.place", task.Queue("orders"))
	sendReceipt = task.Define[receiptArgs]("receipt.send", task.Queue("mail"))
)

// shopConfig is the test module's own section.
type shopConfig struct {
	ReceiptsTo string `koanf:"receipts_to"`
}

func (c shopConfig) Validate() error {
	if c.ReceiptsTo == "" {
		return config.Invalid("receipts_to", "must be set")
	}
	return nil
}

var shopSection = config.Declare("plbatest_shop", shopConfig{ReceiptsTo: "shop@example.test"})

// shop places orders and, for each, enqueues a receipt; receipts fail
// while failReceipts is positive (counting down).
func shop(failReceipts *atomic.Int32) fx.Option {
	return fx.Module("shop",
		shopSection.Provide(),
		fx.Provide(worker.AsRoute(func(e task.Enqueuer, c shopConfig) task.Route {
			return placeOrder.Handle(func(ctx context.Context, a orderArgs) error {
				if a.Cents <= 0 {
					return task.Permanentf("order %s: amount %d", a.ID, a.Cents)
				}
				return sendReceipt.Enqueue(ctx, e, receiptArgs{Order: a.ID, To: c.ReceiptsTo})
			})
		})),
		worker.SupplyRoute(sendReceipt.Handle(func(ctx context.Context, a receiptArgs) error {
			if failReceipts.Add(-1) >= 0 {
				return errors.New("smtp: 421 try again later")
			}
			return nil
		})),
	)
}

func mustNew[A any](t *testing.T, k task.Kind[A], a A) *task.Task {
	t.Helper()
	tk, err := k.New(a)
	require.NoError(t, err)
	return tk
}

func TestHandledAndFollowUps(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	k := plbatest.Start(t, shop(&fail))
	k.Enqueue(mustNew(t, placeOrder, orderArgs{ID: "o1", Cents: 500}), mustNew(t, placeOrder, orderArgs{ID: "o2", Cents: 700}))
	k.RunUntilIdle()

	require.Len(t, k.Succeeded(placeOrder.Name()), 2)
	require.Len(t, k.Succeeded(sendReceipt.Name()), 2)
	plbatest.RequireEnqueued(k, placeOrder.Name(), sendReceipt, receiptArgs{Order: "o2", To: "shop@example.test"})
	require.ElementsMatch(t, []receiptArgs{{"o1", "shop@example.test"}, {"o2", "shop@example.test"}},
		plbatest.EnqueuedBy(k, placeOrder.Name(), sendReceipt))
	require.Empty(t, plbatest.EnqueuedBy(k, sendReceipt.Name(), sendReceipt), "receipts enqueue nothing")
	for _, e := range k.Enqueued(sendReceipt.Name()) {
		require.Equal(t, placeOrder.Name(), e.By.Kind)
	}
	for _, e := range k.Enqueued(placeOrder.Name()) {
		require.Nil(t, e.By, "the test enqueued the orders")
	}
}

// Two failures with a back-off of one and two hours: the retries run at
// once in real time, the clock skipped the hours, and each retry records
// its error and delay.
func TestRetriesSkipBackoff(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	fail.Store(2)
	k := plbatest.Start(t, shop(&fail), plbatest.Config(`
workers:
  mail:
    max_attempts: 5
    backoff:
      initial: 1h
      max: 10h
      jitter: -1
`))
	start := time.Now()
	k.Enqueue(mustNew(t, placeOrder, orderArgs{ID: "o1", Cents: 500}))
	k.RunUntilIdle()
	require.Less(t, time.Since(start), 20*time.Second, "no real waiting for the back-off")

	retried := k.Retried(sendReceipt.Name())
	require.Len(t, retried, 2)
	require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour}, []time.Duration{retried[0].RetryIn.Round(time.Second), retried[1].RetryIn.Round(time.Second)})
	require.ErrorContains(t, retried[0].Err, "421 try again later")
	require.Equal(t, 1, retried[0].Task.Attempt)
	ok := k.Succeeded(sendReceipt.Name())
	require.Len(t, ok, 1)
	require.Equal(t, 3, ok[0].Task.Attempt)
	require.GreaterOrEqual(t, k.Clock().Skipped(), 3*time.Hour-time.Second)
}

// A permanent failure, attempts running out and a kind nobody handles
// all end in the dead letter with their reasons.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	fail.Store(100)
	k := plbatest.Start(t, shop(&fail), plbatest.Set("workers.mail.max_attempts=2", "workers.mail.backoff.initial=1h", "workers.mail.backoff.max=2h"))
	k.Enqueue(mustNew(t, placeOrder, orderArgs{ID: "free", Cents: 0}), mustNew(t, placeOrder, orderArgs{ID: "o1", Cents: 1}))
	k.Enqueue(&task.Task{Kind: "nobody.handles"})
	k.RunUntilIdle()

	dead := k.DeadLettered("")
	reasons := map[string]string{}
	for _, d := range dead {
		reasons[d.Task.Kind] = d.Reason
	}
	require.Len(t, dead, 3)
	require.Equal(t, "order free: amount 0", reasons[placeOrder.Name()])
	require.Equal(t, "smtp: 421 try again later", reasons[sendReceipt.Name()])
	require.Equal(t, "no handler for kind nobody.handles", reasons["nobody.handles"])
	require.Len(t, k.Retried(sendReceipt.Name()), 1)

	dl, err := k.Backend().ListDead(context.Background(), "mail", 10)
	require.NoError(t, err)
	require.Len(t, dl, 1, "the backend holds the dead letter too")
}

// Configuration from YAML and from a struct reach the module; a struct
// is validated.
func TestConfigFromYAMLAndStruct(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	k := plbatest.Start(t, shop(&fail), plbatest.Config("plbatest_shop:\n  receipts_to: yaml@example.test\n"))
	k.Enqueue(mustNew(t, placeOrder, orderArgs{ID: "o1", Cents: 1}))
	k.RunUntilIdle()
	plbatest.RequireEnqueued(k, "", sendReceipt, receiptArgs{Order: "o1", To: "yaml@example.test"})

	k = plbatest.Start(t, shop(&fail), plbatest.Section(shopConfig{ReceiptsTo: "struct@example.test"}))
	k.Enqueue(mustNew(t, placeOrder, orderArgs{ID: "o2", Cents: 1}))
	k.RunUntilIdle()
	plbatest.RequireEnqueued(k, "", sendReceipt, receiptArgs{Order: "o2", To: "struct@example.test"})
}

// A task due in an hour (by the kit's clock) runs without waiting.
func TestNotBeforeOnTheClock(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	k := plbatest.Start(t, shop(&fail))
	tk := mustNew(t, placeOrder, orderArgs{ID: "later", Cents: 1})
	tk.NotBefore = k.Clock().Now().Add(time.Hour)
	k.Enqueue(tk)
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(placeOrder.Name()), 1)
	require.GreaterOrEqual(t, k.Clock().Skipped(), 59*time.Minute)
}

// A test-driven source emits through the runtime's source path.
func TestSourceEmits(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	src := plbatest.NewSource("webhook")
	k := plbatest.Start(t, fx.Options(shop(&fail), src.Module()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, src.Emit(ctx, mustNew(t, placeOrder, orderArgs{ID: "s1", Cents: 3})))
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(placeOrder.Name()), 1)
	require.Len(t, k.Succeeded(sendReceipt.Name()), 1)
}

func TestWaitEnqueued(t *testing.T) {
	t.Parallel()
	var fail atomic.Int32
	src := plbatest.NewSource("feed")
	k := plbatest.Start(t, fx.Options(shop(&fail), src.Module()))
	go func() { // owned: ends once Emit returns (the kit stops the source at cleanup)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = src.Emit(ctx, mustNew(t, placeOrder, orderArgs{ID: "w1", Cents: 3}), mustNew(t, placeOrder, orderArgs{ID: "w2", Cents: 3}))
	}()
	es := k.WaitEnqueued(placeOrder.Name(), 2)
	require.Len(t, es, 2)
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(sendReceipt.Name()), 2)
}

var gated = task.Define[orderArgs]("gated.run", task.Queue("gated"))

// Emit's error is what happened: an Emit whose context ends while the
// queue is full returns that error, and its tasks are not enqueued
// afterwards (when room comes) behind the test's back.
func TestSourceEmitThatFailedEnqueuesNothing(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once atomic.Bool
	src := plbatest.NewSource("feed")
	module := fx.Options(src.Module(), worker.SupplyRoute(gated.Handle(func(ctx context.Context, _ orderArgs) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})))
	k := plbatest.Start(t, module, plbatest.Set("queue.memory.capacity=1"))
	t.Cleanup(func() { // before the kit stops
		if once.CompareAndSwap(false, true) {
			close(release)
		}
	})
	k.Enqueue(mustNew(t, gated, orderArgs{ID: "first", Cents: 1})) // fills the queue while its handler waits

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := src.Emit(ctx, mustNew(t, gated, orderArgs{ID: "late", Cents: 1}))
	require.ErrorIs(t, err, context.DeadlineExceeded, "the queue is full")

	require.True(t, once.CompareAndSwap(false, true))
	close(release)
	k.RunUntilIdle()
	for _, e := range k.Enqueued(gated.Name()) {
		a, err := gated.Args(e.Task)
		require.NoError(t, err)
		require.NotEqual(t, "late", a.ID, "Emit said it failed, yet the task was enqueued")
	}
	require.Len(t, k.Succeeded(gated.Name()), 1)
}

var (
	ship    = task.Define[orderArgs]("ship.order", task.Queue("orders"))
	shipped = task.Define[receiptArgs]("ship.notify", task.Queue("mail"))
)

// A follow-up the backend dropped as a duplicate (its key held, or
// finished within the window) was not enqueued: Enqueued says so, and
// RequireEnqueued does not count it.
func TestDroppedFollowUpIsNotEnqueued(t *testing.T) {
	t.Parallel()
	module := fx.Options(
		fx.Provide(worker.AsRoute(func(e task.Enqueuer) task.Route {
			return ship.Handle(func(ctx context.Context, a orderArgs) error {
				tk, err := shipped.New(receiptArgs{Order: a.ID, To: "shop@example.test"})
				if err != nil {
					return err
				}
				tk.Key = "notify/once" // a bug in the module: one key for every order
				return e.Enqueue(ctx, tk)
			})
		})),
		worker.SupplyRoute(shipped.Handle(func(context.Context, receiptArgs) error { return nil })),
	)
	ct := &captureT{T: t}
	k := plbatest.Start(ct, module, plbatest.Set("queue.memory.dedup_window=1h"))
	k.Enqueue(mustNew(t, ship, orderArgs{ID: "o1", Cents: 1}))
	k.RunUntilIdle()
	k.Enqueue(mustNew(t, ship, orderArgs{ID: "o2", Cents: 1}))
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(shipped.Name()), 1, "the second follow-up was dropped")

	es := k.Enqueued(shipped.Name())
	require.Len(t, es, 2, "both were handed to the producer")
	require.False(t, es[0].Dropped)
	require.True(t, es[1].Dropped, "the backend dropped the second")

	plbatest.RequireEnqueued(k, ship.Name(), shipped, receiptArgs{Order: "o1", To: "shop@example.test"})
	msg, failed := ct.catch(func() {
		plbatest.RequireEnqueued(k, ship.Name(), shipped, receiptArgs{Order: "o2", To: "shop@example.test"})
	})
	require.True(t, failed, "RequireEnqueued passed for a follow-up that was dropped")
	require.Contains(t, msg, "dropped")
}

// captureT is the test's T, whose Fatalf, inside catch, is caught
// instead of failing the test.
type captureT struct {
	*testing.T
	catching bool
	msg      string
}

type caught struct{}

func (c *captureT) Fatalf(format string, args ...any) {
	if !c.catching {
		c.T.Helper()
		c.T.Fatalf(format, args...)
	}
	c.msg = fmt.Sprintf(format, args...)
	panic(caught{})
}

// catch runs f and returns the message of the Fatalf that ended it.
func (c *captureT) catch(f func()) (msg string, failed bool) {
	c.catching, c.msg = true, ""
	defer func() {
		c.catching = false
		if r := recover(); r != nil {
			if _, ok := r.(caught); !ok {
				panic(r)
			}
			msg, failed = c.msg, true
		}
	}()
	f()
	return "", false
}
