package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Producer is the platform's task.Enqueuer: it fills each task's defaults
// (task.Prepare), resolves its queue from its kind's route (an unknown kind
// without an explicit queue goes to task.DefaultQueue, where the pool
// dead-letters it with "no handler for kind X"), lets the Observer see the
// batch (trace context) and hands it to the backend in one call. It is safe
// for concurrent use.
//
// A task's task.HeaderCompletion is stored only when the source's emitter
// set it for this Enqueue (source.Emitting): a task that carries one
// otherwise inherited it (a handler's follow-up made from its task by
// task.Clone), and is stored without it, so that the source named there
// is not told the follow-up's outcome as well as its own task's. The
// caller's task keeps its headers (the backend stores a copy); the marks
// of what Enqueue did (task.Held, task.Finished, task.StoredAgain) are
// set on it all the same.
type Producer struct {
	backend queue.Producer
	bound   atomic.Pointer[Router]
	obs     task.Observer
	now     func() time.Time
	counts  sync.Map // queue name -> *atomic.Int64: tasks this producer enqueued
}

var (
	_ task.Enqueuer    = (*Producer)(nil)
	_ queue.TaskFinder = (*Producer)(nil)
)

// errCannotFind is FindTasks' error when the backend can neither look
// tasks up nor list its dead letters.
var errCannotFind = errors.New("worker: the queue backend cannot look tasks up")

// NewProducer returns a producer enqueuing on backend with routes from
// router. A nil observer observes nothing. A nil router is bound later by
// New (Params.Producer); until then Enqueue returns ErrNotReady.
func NewProducer(backend queue.Producer, router *Router, obs task.Observer) *Producer {
	if obs == nil {
		obs = task.NopObserver{}
	}
	p := &Producer{backend: backend, obs: obs, now: time.Now}
	if router != nil {
		p.bind(router)
	}
	return p
}

// Enqueue prepares tasks and hands them to the backend as one batch. It
// blocks while a bounded queue is full, until ctx ends. A nil task or one
// without a kind fails the whole batch with queue.ErrInvalidTask.
func (p *Producer) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	router := p.bound.Load()
	if router == nil {
		return ErrNotReady
	}
	now := p.now()
	for i, t := range tasks {
		if t == nil {
			return fmt.Errorf("worker: enqueue: task %d of %d is nil: %w", i+1, len(tasks), queue.ErrInvalidTask)
		}
		if t.Kind == "" {
			return fmt.Errorf("worker: enqueue: task %d of %d has no kind: %w", i+1, len(tasks), queue.ErrInvalidTask)
		}
		t.Prepare(now)
		if t.Queue == "" {
			t.Queue = router.QueueFor(t.Kind)
		}
	}
	sent := withoutInherited(ctx, tasks)
	octx := p.obs.Enqueuing(ctx, sent)
	err := p.backend.Enqueue(octx, sent...)
	p.obs.Enqueued(octx, sent, err)
	markAsSent(tasks, sent)
	p.count(tasks, err)
	if err != nil {
		if len(tasks) == 1 {
			return fmt.Errorf("worker: enqueue %s task %s on %q: %w", tasks[0].Kind, tasks[0].ID, tasks[0].Queue, err)
		}
		return fmt.Errorf("worker: enqueue batch of %d tasks: %w", len(tasks), err)
	}
	return nil
}

// count adds the tasks of a batch that its Enqueue, returning err,
// stored (queue.Stored: also those of a batch stored in part, which a
// queue.PartialEnqueueError names apart) to the producer's counts.
func (p *Producer) count(tasks []*task.Task, err error) {
	pe := queue.PartialOf(err)
	queue.EachOnce(tasks, func(t *task.Task) {
		if !queue.Stored(t, err, pe) {
			return
		}
		c, ok := p.counts.Load(t.Queue)
		if !ok {
			c, _ = p.counts.LoadOrStore(t.Queue, new(atomic.Int64))
		}
		c.(*atomic.Int64).Add(1)
	})
}

// Enqueued returns how many tasks this producer enqueued on each queue
// since it was made: tasks the backend stored, not the duplicates it
// dropped (task.Held, task.Finished) nor a stored task enqueued again
// (task.StoredAgain), which counts once. It is what the admin API's enqueue
// rate is computed from.
func (p *Producer) Enqueued() map[string]int64 {
	out := map[string]int64{}
	p.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// FindTasks looks the tasks of queue name up by id or key on the backend
// (queue.FindTasks: through its queue.TaskFinder, else among its dead
// letters alone, as the search says). It makes the producer a
// queue.TaskFinder, so that a source's emitter over it can look up a task
// whose Enqueue ended with its outcome unknown (a schedule's due time).
func (p *Producer) FindTasks(ctx context.Context, name string, l queue.TaskLookup) (queue.TaskSearch, error) {
	switch b := p.backend.(type) {
	case queue.DeadLetters:
		return queue.FindTasks(ctx, b, name, l)
	case queue.TaskFinder:
		if err := l.Check(); err != nil {
			return queue.TaskSearch{}, err
		}
		return b.FindTasks(ctx, name, l)
	}
	return queue.TaskSearch{}, errCannotFind
}
