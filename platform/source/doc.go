// Package source defines how tasks enter the runtime: a Source runs until
// its context ends and emits tasks through an Emitter. The runtime
// supervises every source (restarted for ever with capped back-off, shown
// failed while it crash-loops) and, for sources that implement Completer,
// reports back when each task they emitted is finally done.
//
// # Supervision
//
// A Supervisor runs each Source in its own goroutine with its own context.
// A Run that returns an error, panics or ends its goroutine with
// runtime.Goexit (testing's FailNow, say) is restarted after a delay that
// starts at Config.RestartInitial and doubles with each failure up to
// Config.RestartMax (default 5m), spread by Config.RestartJitter
// (github.com/cenkalti/backoff/v5). A source is never given up: a disk
// that was full for a while, or a server that was down, does not need a
// restart of the host. While it waits for a restart its lifecycle
// component "source/<name>" is Degraded; past Config.CrashLoopLimit
// failures within Config.CrashLoopWindow it is Failed (policy
// StayDegraded by default), and stays so through its restarts until a
// restarted Run shows it works: a poll ends without error, a task is
// emitted, or it stays up for a whole window. Then it is Running again
// and its delay starts over. A source's component is
// lifecycle.External: it never makes /livez fail, and it makes /readyz
// fail only when Config.GateReadiness names it. The component's details
// are the source's Stats: emitted (the tasks the backend stored),
// duplicates (those it dropped as duplicates of another task), errors,
// restarts, last_error.
//
// # Emitting and back-pressure
//
// The Emitter a source receives enqueues through the platform's
// task.Enqueuer (the worker package's producer). Emit blocks while the
// target queue is full, so a fast source is slowed to the pace of its
// consumers and memory stays bounded. A Schedule's emit is the exception:
// each attempt is bounded by its attempt timeout and retried within the
// due time's grace (see Schedule.Run), a wait for room included, since a
// due time is run at most the grace late. A due time whose emit is given
// up after an attempt whose outcome is unknown (queue.ErrOutcomeUnknown)
// is looked up by its key: found, it ran; else the schedule reports it as
// unknown, neither missed nor run (ScheduleDetails.Unknown). The emitter
// looks tasks up through its enqueuer when that is a queue.TaskFinder.
// When the source implements Completer, the emitter stamps every task
// with task.HeaderCompletion = the source's name. The worker's producer
// stores the header only on the tasks of such an emitter (Emitting): a
// handler's follow-up made from its task with task.Clone is stored
// without it, so the source hears the outcome of its own task alone.
//
// # Completions
//
// Completions maps a source name to its Completer. The worker pools call
// Completions.Complete for every task that carries task.HeaderCompletion,
// once the task's outcome is final:
//
//   - with task.Succeeded once the handler returned nil and the backend
//     acked the task, and with task.DeadLettered (and the reason) once the
//     backend dead-lettered it (by the pool's verdict, or on its own at its
//     delivery limit);
//   - after the settlement, never before: a source never hears of an
//     outcome that did not happen. A handled task is acked whatever state
//     its source is in; a source that cannot be reached never turns it
//     into a dead letter;
//   - in whichever process handles the task (another replica, or the same
//     host after a restart), found by name, so a source must have the same
//     name on every replica. Nothing but the header links a task to its
//     source: no callback or channel is held in memory, so the promise
//     survives a durable backend (the task, header included, is stored
//     with it and the completion comes when, and where, it is finally
//     handled);
//   - once per settlement (and again, succeeded, when the backend finds
//     the task delivered again after a settlement that recorded its
//     success was cut short: queue.FinishedWatcher), with a bounded
//     context: a failed completion (one that panicked or called
//     runtime.Goexit included) is counted and logged, not retried by the
//     runtime. Applying it (and retrying that) is the source's job: queue
//     it and return.
//
// If the process dies after the settlement and before the source applied
// the completion, the source emits the task again after its restart; the
// handler, idempotent, runs once more and the completion comes then.
// Within the backend's de-duplication window the copy is dropped instead
// and marked with the first one's outcome (task.Finished); the emitter
// completes it at once, even when Enqueue failed for other tasks of the
// batch, under the same guard as a pool's completion (in the runtime, it
// is the pool of the task's queue that completes it: SetCompleter).
// Complete must therefore be idempotent (marking a mail seen twice is
// fine).
//
// # Polling
//
// Poll turns a function into a Source that is called at once and then every
// interval (with jitter) until its context ends; an error from the function
// ends Run, so the supervisor's restart back-off applies.
package source
