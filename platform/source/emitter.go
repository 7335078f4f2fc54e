package source

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// DefaultCompleteTimeout bounds the completion an emitter makes by itself
// (one made by NewEmitter, or by a Supervisor without SetCompleter) for a
// task the backend dropped as a duplicate of a finished one.
const DefaultCompleteTimeout = time.Minute

// CompleteFunc tells the source of t (task.HeaderCompletion) that t
// finished with outcome o (and reason, for a dead letter). An emitter
// calls it for each task the backend dropped at Enqueue as a duplicate of
// a finished one (task.Finished); an error it returns is returned by
// Emit. The worker runtime gives its supervisor one that completes
// through the pool of the task's queue (see Supervisor.SetCompleter).
type CompleteFunc func(ctx context.Context, t *task.Task, o task.Outcome, reason string) error

// NewEmitter returns the Emitter the supervisor hands to src: it enqueues
// through enq and, when src implements Completer, sets each task's
// task.HeaderCompletion to src's name so the completion finds its way back.
// Back-pressure comes from enq: a bounded backend blocks Emit while the
// queue is full.
//
// A task the backend drops because a task with its key already finished
// (task.Finished) is completed at once with that outcome, whether or not
// Enqueue failed for other tasks of the batch: the source that emits it
// again (after a restart, say) may never have heard it, and no other
// completion will come. The very Task twice in a batch is one task, told
// once. The completion runs under
// Completions.CompleteWithin, bounded by DefaultCompleteTimeout; its
// error (a panic included) is returned by Emit, beside Enqueue's. Only the
// marks of this Enqueue count: Emit removes any a task carries before.
//
// The emitter is a queue.TaskFinder: it looks tasks up through enq when
// enq is one, and fails otherwise. A Schedule looks up the key of a due
// time whose emit it gave up with its outcome unknown (see Schedule.Run).
func NewEmitter(src Source, enq task.Enqueuer) Emitter {
	e := &emitter{name: src.Name(), enq: enq}
	e.find, _ = enq.(queue.TaskFinder)
	if cp, ok := src.(Completer); ok {
		comps := &Completions{}
		_ = comps.Add(e.name, cp) // a named source and a non-nil completer: cannot fail
		e.own = func(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
			return comps.CompleteWithin(ctx, nil, DefaultCompleteTimeout, t, o, reason)
		}
		e.complete = e.own
	}
	return e
}

type emitter struct {
	name     string
	own      CompleteFunc // the emitter's own completion; nil: its source is no Completer
	complete CompleteFunc // own, or the supervisor's (SetCompleter); nil with own
	enq      task.Enqueuer
	find     queue.TaskFinder // enq, when it can look tasks up; nil: it cannot
	// emitted counts the tasks the backend stored, duplicates the ones
	// it dropped as duplicates of other tasks (see Stats).
	emitted    atomic.Int64
	duplicates atomic.Int64
	obs        Observer // nil: none
	pushed     func()   // called after each accepted non-empty batch; nil: none
	gate       gate     // closed while the supervisor has the source paused
}

// Emit waits while the source is paused (Supervisor.Pause), then stamps
// the completion header (when due) and enqueues tasks, within the attempt
// timeout a Schedule gives its emits (see Schedule.Run). An Enqueue still
// under way when the source is paused (waiting for room in a full queue)
// is cut: once the source is resumed, the tasks it did not store nor drop
// are enqueued again, so that a paused source hands nothing over. The
// tasks whose publish the cut left unanswered (queue.ErrOutcomeUnknown)
// are enqueued again at once, within UnknownSettleTimeout, not after
// Resume: their keys keep one that was stored after all from being
// stored twice only while the backend remembers them (JetStream: its
// duplicate_window); one that was not stored is stored then, having
// been handed over before the pause (a full queue leaves it for after
// Resume).
func (e *emitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	if err := e.gate.wait(ctx); err != nil {
		return err
	}
	for _, t := range tasks {
		if t != nil {
			// Only the marks of this Enqueue count (the completions
			// below, the counters).
			task.Unmark(t)
			if e.complete != nil {
				t.SetHeader(task.HeaderCompletion, e.name)
			}
		}
	}
	send := tasks
	var err error
	var errs []error                    // the completions'
	var unknown map[*task.Task]struct{} // sent by a cut Enqueue, outcome unknown
	for {
		var cut bool
		cut, err = e.enqueue(ctx, send)
		errs = e.settle(ctx, send, err, unknown, errs)
		if !cut || ctx.Err() != nil {
			break
		}
		if send = unsettled(send, err); len(send) == 0 {
			err = nil
			break
		}
		if errors.Is(err, queue.ErrOutcomeUnknown) {
			if unknown == nil {
				unknown = make(map[*task.Task]struct{}, len(send))
			}
			for _, t := range send {
				unknown[t] = struct{}{}
			}
			// Settled at once: the backend finds what the cut Enqueue
			// stored while it still remembers their keys.
			if send, errs, err = e.settleUnknown(ctx, send, unknown, errs); len(send) == 0 {
				err = nil
				break
			}
		}
		for _, t := range send {
			task.Unmark(t)
		}
		if err = e.gate.wait(ctx); err != nil {
			break
		}
	}
	// An Emit of no task emits nothing: it is not the sign of a working
	// source (LastEmit, the end of a failure episode) that an accepted
	// batch is, all of its tasks duplicates included.
	if err == nil && len(tasks) > 0 && e.pushed != nil {
		e.pushed()
	}
	if len(errs) == 0 {
		return err
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// enqueue makes one Enqueue of tasks, cut when the source is paused
// meanwhile; wasCut reports that the pause cut it (it failed then).
func (e *emitter) enqueue(ctx context.Context, tasks []*task.Task) (wasCut bool, err error) {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &cut{cancel: cancel}
	if !e.gate.enter(c) {
		return true, errPaused // paused since the wait: nothing was sent
	}
	defer e.gate.leave(c)
	err = e.send(pctx, tasks)
	return err != nil && errors.Is(context.Cause(pctx), errPaused), err
}

// send hands tasks to the enqueuer, within a schedule's attempt timeout
// (withAttemptTimeout: it bounds the Enqueue, not the wait for the gate),
// its context saying which source's emitter makes it (Emitting).
func (e *emitter) send(ctx context.Context, tasks []*task.Task) error {
	ectx, attempted := attemptContext(ctx)
	if e.complete != nil {
		ectx = context.WithValue(ectx, emittingKey{}, e.name)
	}
	return attempted(e.enq.Enqueue(ectx, tasks...))
}

// UnknownSettleTimeout bounds the Enqueue by which an Emit cut by a pause
// settles the tasks whose outcome the cut left unknown (see Emit).
const UnknownSettleTimeout = 10 * time.Second

// settleUnknown enqueues again, at once, the tasks of send that an
// Enqueue cut by a pause sent without hearing whether they were stored
// (queue.ErrOutcomeUnknown), within UnknownSettleTimeout: the backend
// finds each one stored then (task.StoredAgain, counted stored: see
// countEmit), while it still remembers its key; after the pause it may
// not (JetStream remembers a key for its duplicate_window, 2 minutes by
// default) and would store it again. A task not stored is stored now: it
// was handed over before the pause. It returns the tasks left unsettled
// (a full queue: they wait for Resume), errs with the completions'
// errors, and the Enqueue's error.
func (e *emitter) settleUnknown(ctx context.Context, send []*task.Task, unknown map[*task.Task]struct{}, errs []error) ([]*task.Task, []error, error) {
	for _, t := range send {
		task.Unmark(t)
	}
	sctx, cancel := context.WithTimeout(ctx, UnknownSettleTimeout)
	defer cancel()
	err := e.send(sctx, send)
	errs = e.settle(ctx, send, err, unknown, errs)
	if err == nil {
		return nil, errs, nil
	}
	return unsettled(send, err), errs, err
}

// settle counts what the Enqueue of tasks that returned err did (unknown:
// the tasks an Enqueue of this Emit cut by a pause may have stored, see
// countEmit), and tells the source of each task it dropped as a
// duplicate of a finished one (see NewEmitter); it returns errs with the
// completions' errors.
func (e *emitter) settle(ctx context.Context, tasks []*task.Task, err error, unknown map[*task.Task]struct{}, errs []error) []error {
	c := countEmit(tasks, err, unknown)
	e.emitted.Add(int64(c.stored))
	e.duplicates.Add(int64(c.dropped))
	if c.stored > 0 && e.obs != nil {
		e.obs.Emitted(ctx, e.name, c.stored)
	}
	if e.complete == nil {
		return errs
	}
	// The very Task twice in a batch is one task, told once.
	queue.EachOnce(tasks, func(t *task.Task) {
		if o, reason, ok := task.Finished(t); ok {
			if cerr := e.complete(ctx, t, o, reason); cerr != nil {
				errs = append(errs, fmt.Errorf("source %s: complete task %s, a duplicate of one that %s: %w", e.name, t.ID, o, cerr))
			}
		}
	})
	return errs
}

var _ queue.TaskFinder = (*emitter)(nil)

type emittingKey struct{}

// Emitting reports the name of the source whose emitter makes the Enqueue
// called with ctx, when that source implements Completer: the emitter
// set task.HeaderCompletion to that name on each task of the batch. An
// enqueuer keeps the header on such a task only: anywhere else it was
// inherited (a handler's follow-up made from its task by task.Clone, a
// task copied from outside), and its source would be told the outcome of
// a task it never emitted, a second outcome for what it sees as one item.
// The worker's producer drops it then (see worker.Producer).
func Emitting(ctx context.Context) (name string, ok bool) {
	name, ok = ctx.Value(emittingKey{}).(string)
	return name, ok
}

// errCannotFind is FindTasks' error when the enqueuer cannot look tasks up.
var errCannotFind = errors.New("source: the enqueuer cannot look tasks up")

// FindTasks looks tasks up through the enqueuer, when it is a
// queue.TaskFinder.
func (e *emitter) FindTasks(ctx context.Context, queueName string, l queue.TaskLookup) (queue.TaskSearch, error) {
	if e.find == nil {
		return queue.TaskSearch{}, errCannotFind
	}
	return e.find.FindTasks(ctx, queueName, l)
}
