package jetstream

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/task"
)

// TaskError is the failure of one task of a batch.
type TaskError struct {
	ID    string
	Queue string
	Err   error
}

// EnqueueError reports the tasks of a batch that were not stored. The
// others are stored durably; enqueueing the whole batch again is safe,
// because tasks are de-duplicated by key.
type EnqueueError struct {
	Failed []TaskError
	Total  int
}

func (e *EnqueueError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "jetstream: enqueue: %d of %d tasks not stored", len(e.Failed), e.Total)
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&sb, "; and %d more", len(e.Failed)-3)
			break
		}
		fmt.Fprintf(&sb, "; task %s on %q: %v", f.ID, f.Queue, f.Err)
	}
	return sb.String()
}

// Unwrap returns the distinct causes, so errors.Is works on them.
func (e *EnqueueError) Unwrap() []error {
	out := make([]error, 0, 1)
	seen := map[string]bool{}
	for _, f := range e.Failed {
		if k := f.Err.Error(); !seen[k] {
			seen[k] = true
			out = append(out, f.Err)
		}
	}
	return out
}

// Enqueue publishes the tasks asynchronously and waits for every
// publish acknowledgement before it returns, so an accepted batch is
// stored (and replicated) on the server. Tasks are validated first: an
// invalid task fails the whole batch before anything is published. A task
// whose key was seen within Config.DuplicateWindow is dropped by the
// server. A task with NotBefore in the future is stored as a one-shot
// message schedule that the server turns into a ready task at NotBefore
// (servers before 2.12 have no schedules: there the task is stored ready
// and its first delivery is given back with a negative ack delayed until
// NotBefore, which does not count as an attempt in this process).
func (b *Backend) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	if err := b.usable(); err != nil {
		return err
	}
	if len(tasks) == 0 {
		return nil
	}
	now := time.Now()
	for _, t := range tasks {
		if err := checkTask(t); err != nil {
			return err
		}
	}
	qs := make([]*queueState, len(tasks))
	for i, t := range tasks {
		q, err := b.queue(t.Queue)
		if err != nil {
			return err
		}
		qs[i] = q
	}
	for i := range qs {
		if i > 0 && qs[i] == qs[i-1] {
			continue
		}
		if err := qs[i].ensure(ctx, b); err != nil {
			return err
		}
	}
	for _, t := range tasks {
		t.Prepare(now)
	}
	var failed []TaskError
	fail := func(i int, err error) {
		failed = append(failed, TaskError{ID: tasks[i].ID, Queue: tasks[i].Queue, Err: err})
	}
	futures := make([]jetstream.PubAckFuture, len(tasks))
	for i, t := range tasks {
		q := qs[i]
		var f jetstream.PubAckFuture
		var err error
		if t.NotBefore.After(now) && b.schedules {
			m := encodeTask(t, q.schedPrefix+encodeToken(t.ID), t.Key)
			// The message the schedule produces need not keep the
			// Nats-Msg-Id: the id travels in its own header.
			m.Header[HeaderID] = []string{t.ID}
			m.Header[hdrSchedule] = []string{"@at " + t.NotBefore.UTC().Format(time.RFC3339Nano)}
			m.Header[hdrScheduleTarget] = []string{q.subject}
			f, err = b.js.PublishMsgAsync(m)
		} else {
			f, err = b.js.PublishMsgAsync(encodeTask(t, q.subject, t.Key))
		}
		if err != nil {
			fail(i, fmt.Errorf("publish: %w", err))
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			fail(i, fmt.Errorf("publish ack: %w", err))
		case <-ctx.Done():
			fail(i, fmt.Errorf("publish ack: %w", ctx.Err()))
		}
	}
	if len(failed) > 0 {
		return &EnqueueError{Failed: failed, Total: len(tasks)}
	}
	return nil
}
