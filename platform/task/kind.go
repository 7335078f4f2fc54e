package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// Kind is a task kind defined once with its payload type A: producers make
// tasks of it with New, the handler is bound to it with Handle, and the
// compiler checks that both speak A (as River's JobArgs do). Define it at
// package level:
//
//	var Invoice = task.Define[InvoiceArgs]("invoice.send", task.Queue("billing"))
//
//	t, err := Invoice.New(InvoiceArgs{Number: "2024-17"}) // producer
//	fx.Options(worker.SupplyRoute(Invoice.Handle(send)))     // consumer
//
// Payloads are JSON. A Kind is a small value, safe for concurrent use.
type Kind[A any] struct {
	name        string
	queue       string
	maxAttempts int
	timeout     time.Duration
}

// KindOption configures a Kind (see Define).
type KindOption func(*kindOptions)

type kindOptions struct {
	queue                      string
	maxAttempts                int
	timeout                    time.Duration
	setMaxAttempts, setTimeout bool
}

// Queue puts the kind's tasks on the named queue (Route.Queue). Default
// DefaultQueue.
func Queue(name string) KindOption { return func(o *kindOptions) { o.queue = name } }

// MaxAttempts overrides the pool's maximum attempts for the kind
// (Route.MaxAttempts); at least 1.
func MaxAttempts(n int) KindOption {
	return func(o *kindOptions) { o.maxAttempts, o.setMaxAttempts = n, true }
}

// Timeout overrides the pool's handler timeout for the kind
// (Route.Timeout); positive.
func Timeout(d time.Duration) KindOption {
	return func(o *kindOptions) { o.timeout, o.setTimeout = d, true }
}

// Define defines the kind called name whose payload is an A. It panics
// on an empty name, a MaxAttempts below 1 or a Timeout that is not
// positive, and on a name defined before in the program with another
// payload type or queue (its handler would decode tasks made as another
// type, or its tasks would go where its pool is not): definitions are
// program text, and a mistake must stop the program on its first run.
// Defining a name again with the same type and queue gives the same kind
// (MaxAttempts and Timeout are the route's, and may differ).
func Define[A any](name string, opts ...KindOption) Kind[A] {
	var o kindOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case name == "":
		panic("task: Define: empty kind name")
	case o.setMaxAttempts && o.maxAttempts < 1:
		panic(fmt.Sprintf("task: Define %q: MaxAttempts must be at least 1 (got %d)", name, o.maxAttempts))
	case o.setTimeout && o.timeout <= 0:
		panic(fmt.Sprintf("task: Define %q: Timeout must be positive (got %s)", name, o.timeout))
	}
	k := Kind[A]{name: name, queue: o.queue, maxAttempts: o.maxAttempts, timeout: o.timeout}
	define(name, reflect.TypeFor[A](), k.QueueName())
	return k
}

// defined holds the payload type and queue of every kind name Define
// was given in the program.
var defined = struct {
	sync.Mutex
	kinds map[string]definition
}{kinds: map[string]definition{}}

type definition struct {
	payload reflect.Type
	queue   string
}

// define records name's payload type and queue, panicking when name was
// defined with others.
func define(name string, payload reflect.Type, queue string) {
	defined.Lock()
	defer defined.Unlock()
	d := definition{payload: payload, queue: queue}
	if prev, ok := defined.kinds[name]; ok && prev != d {
		panic(fmt.Sprintf("task: Define %q: defined before with payload %s on queue %q, now with payload %s on queue %q",
			name, prev.payload, prev.queue, payload, queue))
	}
	defined.kinds[name] = d
}

// Name returns the kind's name (Task.Kind).
func (k Kind[A]) Name() string { return k.name }

// QueueName returns the queue the kind's tasks go to.
func (k Kind[A]) QueueName() string {
	if k.queue == "" {
		return DefaultQueue
	}
	return k.queue
}

// New returns a task of the kind carrying args as its JSON payload, on the
// kind's queue. Set its Key to de-duplicate, NotBefore to delay it.
func (k Kind[A]) New(args A) (*Task, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("task: encode %s payload: %w", k.name, err)
	}
	return &Task{Kind: k.name, Queue: k.QueueName(), Payload: b}, nil
}

// Enqueue makes a task of args (New) and enqueues it through e.
func (k Kind[A]) Enqueue(ctx context.Context, e Enqueuer, args A) error {
	t, err := k.New(args)
	if err != nil {
		return err
	}
	return e.Enqueue(ctx, t)
}

// Args decodes the payload of t, which must be of this kind.
func (k Kind[A]) Args(t *Task) (A, error) {
	var a A
	if t.Kind != k.name {
		return a, fmt.Errorf("task: task %s is of kind %q, not %q", t.ID, t.Kind, k.name)
	}
	if err := decode(t.Payload, &a); err != nil {
		return a, fmt.Errorf("task %s: decode %s payload: %w", t.ID, t.Kind, err)
	}
	return a, nil
}

// errNull is decode's error for a payload of JSON null into a type that
// has no null.
var errNull = errors.New("null, where a value is due")

// decode unmarshals payload into v. A payload of JSON null is refused
// unless *v can be nil (a pointer, map, slice or interface):
// encoding/json leaves *v as it is, so a struct's zero value would pass
// for one that was sent.
func decode[T any](payload []byte, v *T) error {
	if bytes.Equal(bytes.TrimSpace(payload), []byte("null")) {
		switch reflect.TypeFor[T]().Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		default:
			return errNull
		}
	}
	return json.Unmarshal(payload, v)
}

// Handle returns the kind's Route: fn receives each task's decoded
// payload, and reaches the task itself (id, attempt, headers) through
// FromContext(ctx). A payload that does not decode (JSON null included,
// unless A has a nil value) is a permanent failure (retrying cannot fix
// it). mws wrap fn's handler, the first outermost.
func (k Kind[A]) Handle(fn func(ctx context.Context, args A) error, mws ...Middleware) Route {
	h := HandlerFunc(func(ctx context.Context, t *Task) error {
		a, err := k.Args(t)
		if err != nil {
			return Permanent(err)
		}
		return fn(WithTask(ctx, t), a)
	})
	return Route{
		Kind:        k.name,
		Queue:       k.queue,
		Handler:     Chain(h, mws...),
		MaxAttempts: k.maxAttempts,
		Timeout:     k.timeout,
		Name:        "task.Define(" + k.name + ")",
	}
}

// taskKey is the context key of the task being handled.
type taskKey struct{}

// WithTask returns ctx carrying t as the task being handled. Typed handlers
// (Kind.Handle) get it set for them.
func WithTask(ctx context.Context, t *Task) context.Context {
	return context.WithValue(ctx, taskKey{}, t)
}

// FromContext returns the task being handled under ctx, set by Kind.Handle
// (or WithTask): its ID, Attempt, Headers and the rest. The task belongs to
// the runtime: read it, do not change it.
func FromContext(ctx context.Context) (*Task, bool) {
	t, ok := ctx.Value(taskKey{}).(*Task)
	return t, ok && t != nil
}
