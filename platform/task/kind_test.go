package task_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

type invoiceArgs struct {
	Number string `json:"number"`
	Cents  int    `json:"cents"`
}

var invoiceKind = task.Define[invoiceArgs]("invoice.test", task.Queue("billing"), task.MaxAttempts(3), task.Timeout(time.Minute))

func TestKindNewAndArgsRoundTrip(t *testing.T) {
	tk, err := invoiceKind.New(invoiceArgs{Number: "2024-17", Cents: 12000})
	require.NoError(t, err)
	require.Equal(t, "invoice.test", tk.Kind)
	require.Equal(t, "billing", tk.Queue)
	require.JSONEq(t, `{"number":"2024-17","cents":12000}`, string(tk.Payload))

	a, err := invoiceKind.Args(tk)
	require.NoError(t, err)
	require.Equal(t, invoiceArgs{Number: "2024-17", Cents: 12000}, a)

	other := &task.Task{ID: "x", Kind: "other", Payload: tk.Payload}
	_, err = invoiceKind.Args(other)
	require.ErrorContains(t, err, `is of kind "other", not "invoice.test"`)
}

func TestKindRouteCarriesOptions(t *testing.T) {
	r := invoiceKind.Handle(func(context.Context, invoiceArgs) error { return nil })
	require.Equal(t, "invoice.test", r.Kind)
	require.Equal(t, "billing", r.Queue)
	require.Equal(t, 3, r.MaxAttempts)
	require.Equal(t, time.Minute, r.Timeout)
	require.Equal(t, "task.Define(invoice.test)", r.Name)

	plain := task.Define[invoiceArgs]("plain")
	pr := plain.Handle(func(context.Context, invoiceArgs) error { return nil })
	require.Equal(t, task.DefaultQueue, pr.QueueName())
	require.Zero(t, pr.MaxAttempts)
	require.Zero(t, pr.Timeout)
	require.Equal(t, task.DefaultQueue, plain.QueueName())
}

// The typed handler gets the decoded args and reaches the task through
// its context; a payload that does not decode fails permanently without
// calling it.
func TestKindHandleDecodesAndExposesTask(t *testing.T) {
	var (
		got  invoiceArgs
		seen *task.Task
	)
	boom := errors.New("smtp down")
	r := invoiceKind.Handle(func(ctx context.Context, a invoiceArgs) error {
		got = a
		seen, _ = task.FromContext(ctx)
		return boom
	})
	tk, err := invoiceKind.New(invoiceArgs{Number: "7"})
	require.NoError(t, err)
	tk.ID, tk.Attempt = "id-1", 2
	tk.SetHeader("tenant", "acme")
	require.ErrorIs(t, r.Handler.Handle(context.Background(), tk), boom)
	require.Equal(t, "7", got.Number)
	require.Same(t, tk, seen)
	require.Equal(t, 2, seen.Attempt)
	require.Equal(t, "acme", seen.Header("tenant"))

	called := false
	r = invoiceKind.Handle(func(context.Context, invoiceArgs) error { called = true; return nil })
	err = r.Handler.Handle(context.Background(), &task.Task{ID: "bad", Kind: "invoice.test", Payload: []byte("{")})
	require.True(t, task.IsPermanent(err), "%v", err)
	require.False(t, called)

	_, ok := task.FromContext(context.Background())
	require.False(t, ok)
}

func TestKindHandleMiddlewareOrder(t *testing.T) {
	var order []string
	mw := func(name string) task.Middleware {
		return func(next task.Handler) task.Handler {
			return task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
				order = append(order, name)
				return next.Handle(ctx, t)
			})
		}
	}
	r := invoiceKind.Handle(func(context.Context, invoiceArgs) error { order = append(order, "fn"); return nil }, mw("a"), mw("b"))
	tk, _ := invoiceKind.New(invoiceArgs{})
	require.NoError(t, r.Handler.Handle(context.Background(), tk))
	require.Equal(t, []string{"a", "b", "fn"}, order)
}

type enqueuerFunc func(ctx context.Context, ts ...*task.Task) error

func (f enqueuerFunc) Enqueue(ctx context.Context, ts ...*task.Task) error { return f(ctx, ts...) }

func TestKindEnqueue(t *testing.T) {
	var got []*task.Task
	e := enqueuerFunc(func(_ context.Context, ts ...*task.Task) error { got = append(got, ts...); return nil })
	require.NoError(t, invoiceKind.Enqueue(context.Background(), e, invoiceArgs{Number: "9"}))
	require.Len(t, got, 1)
	a, err := invoiceKind.Args(got[0])
	require.NoError(t, err)
	require.Equal(t, "9", a.Number)

	bad := task.Define[func()]("bad")
	require.ErrorContains(t, bad.Enqueue(context.Background(), e, func() {}), "encode bad payload")
	require.Len(t, got, 1, "nothing enqueued when encoding fails")
}

func TestDefinePanicsOnBadDefinitions(t *testing.T) {
	require.PanicsWithValue(t, "task: Define: empty kind name", func() { task.Define[int]("") })
	require.Panics(t, func() { task.Define[int]("k", task.MaxAttempts(0)) })
	require.Panics(t, func() { task.Define[int]("k", task.Timeout(-time.Second)) })
	// -1 is no "unset": the options say at least 1, positive.
	require.PanicsWithValue(t, `task: Define "k": MaxAttempts must be at least 1 (got -1)`, func() { task.Define[int]("k", task.MaxAttempts(-1)) })
	require.PanicsWithValue(t, `task: Define "k": Timeout must be positive (got -1ns)`, func() { task.Define[int]("k", task.Timeout(-1)) })
}

// A payload of JSON null is no value of a struct (or a number, a string):
// decoding it would hand the handler the zero value as if it had been
// sent, so it fails permanently without calling the handler, as a payload
// that does not decode does. Where null is a value (a pointer, a map, a
// slice) it decodes to nil.
func TestNullPayloadIsNoStruct(t *testing.T) {
	called := false
	h := invoiceKind.Handle(func(context.Context, invoiceArgs) error { called = true; return nil }).Handler
	for _, p := range []string{"null", " null\n"} {
		err := h.Handle(context.Background(), &task.Task{ID: "n", Kind: invoiceKind.Name(), Payload: []byte(p)})
		require.True(t, task.IsPermanent(err), "%q: %v", p, err)
		require.ErrorContains(t, err, "decode invoice.test payload: null")
	}
	err := task.JSON(func(context.Context, invoiceArgs) error { called = true; return nil }).
		Handle(context.Background(), &task.Task{ID: "n", Kind: "invoice.test", Payload: []byte("null")})
	require.True(t, task.IsPermanent(err), "%v", err)
	require.False(t, called)

	ptr := task.Define[*invoiceArgs]("invoice.maybe")
	a, err := ptr.Args(&task.Task{Kind: "invoice.maybe", Payload: []byte("null")})
	require.NoError(t, err)
	require.Nil(t, a)
	list := task.Define[[]string]("names")
	l, err := list.Args(&task.Task{Kind: "names", Payload: []byte("null")})
	require.NoError(t, err)
	require.Nil(t, l)
}

// One kind name is one payload type on one queue in a program: a second
// Define of the name with another type or queue would make tasks its
// handler decodes as another type, or puts where its pool is not, so it
// panics, naming both. The same definition again is the same kind.
func TestDefineTwiceMustAgree(t *testing.T) {
	task.Define[invoiceArgs]("define.twice", task.Queue("q1"), task.MaxAttempts(2))
	again := task.Define[invoiceArgs]("define.twice", task.Queue("q1"), task.MaxAttempts(5))
	require.Equal(t, 5, again.Handle(func(context.Context, invoiceArgs) error { return nil }).MaxAttempts,
		"attempts and timeout are the route's: one side may leave them out")
	require.PanicsWithValue(t, `task: Define "define.twice": defined before with payload task_test.invoiceArgs on queue "q1", now with payload int on queue "q1"`,
		func() { task.Define[int]("define.twice", task.Queue("q1")) })
	require.PanicsWithValue(t, `task: Define "define.twice": defined before with payload task_test.invoiceArgs on queue "q1", now with payload task_test.invoiceArgs on queue "default"`,
		func() { task.Define[invoiceArgs]("define.twice") })
	task.Define[invoiceArgs]("define.default")
	task.Define[invoiceArgs]("define.default", task.Queue(task.DefaultQueue)) // the same queue, named
}
