package worker

import (
	"context"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// deadTeller tells sources of the dead letters a backend made on its own
// (queue.DeadWatcher): the backend hands each one over without blocking
// (add queues it), and one goroutine, running from StartPools to
// StopPools, calls the task's source's Complete with task.DeadLettered and
// the backend's reason, counted on the pool of the task's queue (Dead, and
// CompletionFailed when the source fails) and told to the observer when
// it is a task.DeadObserver (telemetry's plba.task.dead_lettered). Nothing is dropped while the
// runtime runs: what is queued when it stops is told within Stop's ctx. A
// dead letter the backend reports after that (it closes after the pools)
// is counted and logged as not told.
type deadTeller struct {
	comps *source.Completions
	pools map[string]*Pool
	obs   task.DeadObserver // nil: the observer does not count dead letters
	log   *zap.Logger

	mu      sync.Mutex
	pending []queue.DeadLetter
	running bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newDeadTeller(comps *source.Completions, pools map[string]*Pool, obs task.Observer, log *zap.Logger) *deadTeller {
	d := &deadTeller{comps: comps, pools: pools, log: log, wake: make(chan struct{}, 1)}
	d.obs, _ = obs.(task.DeadObserver)
	return d
}

// add queues dl; it never blocks for long and never calls the backend.
func (d *deadTeller) add(dl queue.DeadLetter) {
	if dl.Task == nil {
		return
	}
	if p := d.pools[dl.Task.Queue]; p != nil {
		p.n.dead.Add(1)
	}
	if d.obs != nil {
		d.obs.DeadLettered(context.Background(), dl.Task, dl.Reason)
	}
	// The one log line of this dead letter (warn), whichever way it goes.
	msg := "task dead-lettered by the backend"
	hasSource := dl.Task.Header(task.HeaderCompletion) != ""
	d.mu.Lock()
	tell := hasSource && d.running
	if tell {
		d.pending = append(d.pending, dl)
	} else if hasSource {
		msg += " after the runtime stopped; its source is not told"
	}
	d.mu.Unlock()
	d.log.Warn(msg, zap.String("task", dl.Task.ID), zap.String("kind", dl.Task.Kind), zap.String("queue", dl.Task.Queue),
		zap.Int("attempt", dl.Task.Attempt), zap.String("reason", dl.Reason))
	if !tell {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// start starts the goroutine once.
func (d *deadTeller) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return
	}
	d.running = true
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go d.run()
}

// close stops the goroutine after it told what is queued, within ctx.
func (d *deadTeller) close(ctx context.Context) error {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return nil
	}
	d.running = false
	stop, done := d.stop, d.done
	d.mu.Unlock()
	close(stop)
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("worker: tell sources of dead letters: %w", ctx.Err())
	}
	// Whatever arrived meanwhile.
	d.drain(ctx)
	return nil
}

func (d *deadTeller) run() {
	defer close(d.done)
	for {
		select {
		case <-d.wake:
			d.drain(context.Background())
		case <-d.stop:
			d.drain(context.Background())
			return
		}
	}
}

// drain tells every queued dead letter, each bounded by parent and by the
// task timeout of its queue's pool (DefaultTaskTimeout without one).
func (d *deadTeller) drain(parent context.Context) {
	for {
		d.mu.Lock()
		batch := d.pending
		d.pending = nil
		d.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, dl := range batch {
			d.tell(parent, dl)
		}
	}
}

func (d *deadTeller) tell(parent context.Context, dl queue.DeadLetter) {
	timeout := DefaultTaskTimeout
	p := d.pools[dl.Task.Queue]
	if p != nil {
		timeout = p.cfg.TaskTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	if err := d.comps.Complete(ctx, dl.Task, task.DeadLettered, dl.Reason); err != nil {
		if p != nil {
			p.n.completionFailed.Add(1)
			p.setLastError(err)
		}
		d.log.Error("completion of a task the backend dead-lettered failed", zap.String("task", dl.Task.ID),
			zap.String("queue", dl.Task.Queue), zap.Error(err))
	}
}
