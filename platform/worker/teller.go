package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// teller tells sources of the outcomes a backend found on its own: the
// dead letters it made outside any settlement (queue.DeadWatcher), and the
// tasks it found delivered again after they succeeded
// (queue.FinishedWatcher). The backend hands each one over without
// blocking (addDead, addFinished queue it), and one goroutine, running
// from StartPools to StopPools, calls the task's source's Complete: with
// task.DeadLettered and the backend's reason, counted on the pool of the
// task's queue (Dead, and CompletionFailed when the source fails) and told
// to the observer when it is a task.DeadObserver (telemetry's
// plba.task.dead_lettered); with task.Succeeded for a finished task,
// counted only when the source fails (its success was counted, if at all,
// by the settlement that recorded it). Nothing is dropped while the
// runtime runs: what is queued when it stops is told within Stop's ctx
// and a short grace after it (as the pools' own telling then is); when
// that ends first, the telling in progress is cancelled, the rest is
// logged as not told, and the goroutine ends (a later Stop waits for it).
// What the backend reports after that (it closes after the pools) is
// logged as not told.
type teller struct {
	comps *source.Completions
	pools map[string]*Pool
	obs   task.DeadObserver // nil: the observer does not count dead letters
	log   *zap.Logger

	mu      sync.Mutex
	pending []toldOutcome
	running bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{} // nil until start; closed once the goroutine ended
	// cut bounds the goroutine's telling; cancelled when close's ctx
	// ends before the goroutine did.
	cut       context.Context
	cancelCut context.CancelFunc
}

// toldOutcome is an outcome the teller tells a task's source.
type toldOutcome struct {
	t      *task.Task
	o      task.Outcome
	reason string
}

func newTeller(comps *source.Completions, pools map[string]*Pool, obs task.Observer, log *zap.Logger) *teller {
	d := &teller{comps: comps, pools: pools, log: log, wake: make(chan struct{}, 1)}
	d.obs, _ = obs.(task.DeadObserver)
	return d
}

// addDead queues dl; it never blocks for long and never calls the backend.
func (d *teller) addDead(dl queue.DeadLetter) {
	if dl.Task == nil {
		return
	}
	if p := d.pools[dl.Task.Queue]; p != nil {
		p.n.dead.Add(1)
	}
	d.observeDead(dl)
	// The one log line of this dead letter (warn), whichever way it goes.
	msg := "task dead-lettered by the backend"
	tell := d.queue(toldOutcome{t: dl.Task, o: task.DeadLettered, reason: dl.Reason})
	if !tell && dl.Task.Header(task.HeaderCompletion) != "" {
		msg += " after the runtime stopped; its source is not told"
	}
	d.log.Warn(msg, zap.String("task", dl.Task.ID), zap.String("kind", dl.Task.Kind), zap.String("queue", dl.Task.Queue),
		zap.Int("attempt", dl.Task.Attempt), zap.String("reason", dl.Reason))
}

// observeDead tells the observer of dl, if it hears of dead letters, on
// a goroutine of its own that it waits for. A panic in it is logged, and
// so is a runtime.Goexit (which nothing can recover): either would end
// the goroutine the backend reports dl on (JetStream's watcher, the
// memory backend's caller or timer: the process, or every later report),
// and the source would not be told.
func (d *teller) observeDead(dl queue.DeadLetter) {
	if d.obs == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		returned := false
		defer func() {
			if r := recover(); r != nil {
				d.log.Error("observer panicked on a dead letter the backend made", zap.String("task", dl.Task.ID),
					zap.String("queue", dl.Task.Queue), zap.Any("panic", r), zap.Stack("stack"))
			} else if !returned {
				d.log.Error("observer called runtime.Goexit on a dead letter the backend made", zap.String("task", dl.Task.ID),
					zap.String("queue", dl.Task.Queue), zap.Stack("stack"))
			}
		}()
		d.obs.DeadLettered(context.Background(), dl.Task, dl.Reason)
		returned = true
	}()
	<-done
}

// addFinished queues t, a task the backend found delivered again after
// it succeeded, for its source to be told task.Succeeded; it never blocks
// for long and never calls the backend.
func (d *teller) addFinished(t *task.Task) {
	if t == nil || t.Header(task.HeaderCompletion) == "" {
		return
	}
	if d.queue(toldOutcome{t: t, o: task.Succeeded}) {
		d.log.Info("task found succeeded on a delivery after its settlement was cut short; its source is told",
			zap.String("task", t.ID), zap.String("kind", t.Kind), zap.String("queue", t.Queue))
		return
	}
	d.log.Warn("task found succeeded on a delivery after the runtime stopped; its source is not told",
		zap.String("task", t.ID), zap.String("kind", t.Kind), zap.String("queue", t.Queue))
}

// queue queues o for telling when its task has a source and the teller
// runs, and reports whether it did.
func (d *teller) queue(o toldOutcome) bool {
	if o.t.Header(task.HeaderCompletion) == "" {
		return false
	}
	d.mu.Lock()
	tell := d.running
	if tell {
		d.pending = append(d.pending, o)
	}
	d.mu.Unlock()
	if tell {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	return tell
}

// start starts the goroutine once.
func (d *teller) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return
	}
	d.running = true
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	d.cut, d.cancelCut = context.WithCancel(context.Background())
	go d.run(d.cut, d.stop, d.done)
}

// close stops the goroutine after it told what is queued, within ctx.
// When ctx ends first, the goroutine gets the pools' stop grace more (see
// stopBounded: the pools' own telling that begins once Stop's ctx ended
// gets it too), ending earlier when limit (the caller's deadline, see
// deadlineOf) does; then its telling is cut short (see drain) and close
// returns an error; the goroutine ends once the Complete in progress
// returned, and a later close waits for that.
func (d *teller) close(ctx, limit context.Context) error {
	d.mu.Lock()
	if d.done == nil {
		d.mu.Unlock()
		return nil // never started
	}
	if d.running {
		d.running = false
		close(d.stop)
	}
	done, cancelCut := d.done, d.cancelCut
	d.mu.Unlock()
	defer cancelCut()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	grace := time.NewTimer(d.grace())
	defer grace.Stop()
	select {
	case <-done:
		return nil // all told
	case <-grace.C:
	case <-limit.Done():
	}
	return fmt.Errorf("worker: tell sources of the outcomes the backend found: %w", ctx.Err())
}

// grace is the longest stop grace of the pools (stopGrace unless a test
// lengthened it, see SetStopGrace).
func (d *teller) grace() time.Duration {
	g := stopGrace
	for _, p := range d.pools {
		g = max(g, p.grace)
	}
	return g
}

// run is the goroutine: it tells what is queued, bounded by cut, until
// stop is closed and what was queued before is told.
func (d *teller) run(cut context.Context, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-d.wake:
			d.drain(cut)
		case <-stop:
			d.drain(cut)
			return
		}
	}
}

// drain tells every queued outcome, each bounded by parent and by the
// task timeout of its queue's pool (DefaultTaskTimeout without one). Once
// parent ended (close's ctx did), what is left is logged as not told.
func (d *teller) drain(parent context.Context) {
	for {
		d.mu.Lock()
		batch := d.pending
		d.pending = nil
		d.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, o := range batch {
			if parent.Err() != nil {
				if p := d.pools[o.t.Queue]; p != nil {
					p.n.completionFailed.Add(1)
				}
				d.log.Warn("the runtime stopped before the source of a task the backend finished was told; it is not told",
					zap.String("task", o.t.ID), zap.String("queue", o.t.Queue), zap.String("outcome", string(o.o)))
				continue
			}
			d.tell(parent, o)
		}
	}
}

func (d *teller) tell(parent context.Context, o toldOutcome) {
	timeout := DefaultTaskTimeout
	p := d.pools[o.t.Queue]
	if p != nil {
		timeout = p.cfg.TaskTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	if err := d.comps.Complete(ctx, o.t, o.o, o.reason); err != nil {
		if p != nil {
			p.n.completionFailed.Add(1)
			p.setLastError(err)
		}
		d.log.Error("completion of a task the backend finished failed", zap.String("task", o.t.ID),
			zap.String("queue", o.t.Queue), zap.String("outcome", string(o.o)), zap.Error(err))
	}
}
