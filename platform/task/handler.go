package task

import (
	"context"
	"encoding/json"
	"fmt"
)

// Handler processes one task. It must honour ctx (the task timeout and the
// pool's hard stop cancel it) and be idempotent: delivery is at least once.
type Handler interface {
	Handle(ctx context.Context, t *Task) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t *Task) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, t *Task) error { return f(ctx, t) }

// Middleware wraps a Handler with cross-cutting behaviour (tracing, logging,
// metrics, recovery, timeouts).
type Middleware func(Handler) Handler

// Chain wraps h in mws so that mws[0] is the outermost: Chain(h, a, b) runs
// a, then b, then h.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// JSON adapts a function of a decoded value to a Handler: the payload is
// decoded as JSON into a T and passed to fn, so domain code never touches
// Task. A payload that does not decode (JSON null included, unless T has
// a nil value) is a permanent failure (retrying cannot fix it).
func JSON[T any](fn func(ctx context.Context, v T) error) Handler {
	return HandlerFunc(func(ctx context.Context, t *Task) error {
		var v T
		if err := decode(t.Payload, &v); err != nil {
			return Permanent(fmt.Errorf("task %s: decode %s payload: %w", t.ID, t.Kind, err))
		}
		return fn(ctx, v)
	})
}

// NewJSON returns a task of kind whose payload is v encoded as JSON.
func NewJSON(kind string, v any) (*Task, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("task: encode %s payload: %w", kind, err)
	}
	return &Task{Kind: kind, Payload: b}, nil
}
