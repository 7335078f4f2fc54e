// Package source defines how tasks enter the runtime: a Source runs until
// its context ends and emits tasks through an Emitter. The runtime
// supervises every source (restarted for ever with capped back-off, shown
// failed while it crash-loops) and, for sources that implement Completer,
// reports back when each task they emitted is finally done.
//
// # Supervision
//
// A Supervisor runs each Source in its own goroutine with its own context.
// A Run that returns an error or panics is restarted after a delay that
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
// are the source's Stats: emitted, errors, restarts, last_error.
//
// # Emitting and back-pressure
//
// The Emitter a source receives enqueues through the platform's
// task.Enqueuer (the worker package's producer). Emit blocks while the
// target queue is full, so a fast source is slowed to the pace of its
// consumers and memory stays bounded. When the source implements Completer,
// the emitter stamps every task with task.HeaderCompletion = the source's
// name.
//
// # Completions
//
// Completions maps a source name to its Completer. The worker pools call
// Completions.Complete for every task that carries task.HeaderCompletion,
// once the task's outcome is final:
//
//   - with task.Succeeded after the handler returned nil, and with
//     task.DeadLettered (and the reason) when it failed for good;
//   - after the handler's work, before the delivery is acked or
//     dead-lettered, so a crash in between redelivers the task and the
//     completion is made again;
//   - in whichever process handles the task (another replica, or the same
//     host after a restart), found by name, so a source must have the same
//     name on every replica. Nothing but the header links a task to its
//     source: no callback or channel is held in memory, so the promise
//     survives a durable backend (the task, header included, is stored
//     with it and the completion comes when, and where, it is finally
//     handled);
//   - at least once: a completion that fails (returns an error) makes the
//     success path retry the delivery, so the completion is not lost; the
//     handler runs again, which handlers tolerate anyway (at-least-once).
//
// Complete must therefore be idempotent (marking a mail seen twice is fine).
// A failed completion of a dead-lettered task is logged and recorded in the
// dead-letter reason; re-driving the dead letter makes it again.
//
// # Polling
//
// Poll turns a function into a Source that is called at once and then every
// interval (with jitter) until its context ends; an error from the function
// ends Run, so the supervisor's restart back-off applies.
package source
