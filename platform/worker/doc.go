// Package worker runs tasks: a Router maps kinds to handlers, a Producer
// (the platform's task.Enqueuer) puts tasks on their queues, and one
// supervised Pool per queue leases, handles and settles them. A Runtime
// owns all of it plus the source supervisor, and Module wires it into fx.
//
// # A delivery's way through a pool
//
// The pool's fetcher leases batches (at most BatchSize; the pool holds at
// most Concurrency + BatchSize deliveries, those beyond the busy workers in
// a hand-over buffer that refills by half batches; a buffered delivery
// that waited half its lease or more is extended before it runs, one
// whose lease ended before a worker took it is skipped, counted as
// expired, and delivered again by the backend as a new attempt; so is one
// given back at Pause or Stop whose lease had ended) and hands
// each delivery to a worker, which runs it through recover → timeout →
// observer → handler:
//
//   - recover: a panic in the handler is logged with its stack and counted
//     as a failure (*task.PanicError);
//   - timeout: the handler's ctx ends after the route's Timeout or the
//     pool's TaskTimeout;
//   - observer: task.Observer.Starting before the handler, Finished after
//     settlement (telemetry hooks in here).
//
// Then the delivery is settled:
//
//   - nil: acked, whatever state the task's source is in;
//   - task.Permanent: dead letter with the error's text as reason;
//   - task.RetryAfter(d): retried at now+d (still an attempt: past the
//     maximum attempts it is dead-lettered);
//   - any other error: retried after the back-off (Initial × Multiplier^(n-1)
//     capped at Max, ±Jitter but never beyond Max;
//     github.com/cenkalti/backoff/v5), dead-lettered
//     with the last error as reason once the attempt reaches MaxAttempts
//     (the route's, else the pool's);
//   - a kind without a route: dead letter with "no handler for kind X";
//   - a delivery past its last attempt (Attempt > MaxAttempts: the process
//     that held the last attempt ended before settling it, or after its
//     dead letter was stored but before the backend forgot the delivery):
//     dead letter without running the handler, with "delivered again after
//     its last attempt" as reason (a backend that de-duplicates dead
//     letters of one delivery keeps the first); running it could turn a
//     task that is dead already into a success as well;
//   - a task carrying task.HeaderRejected (a stand-in, see task.Rejected):
//     dead letter with that reason, without running a handler.
//
// What is counted and reported is what the backend did. A settlement it
// refuses (an error from Ack, Retry, DeadLetter or Release, or a panic in
// one: recovered and logged with its stack, the call and the task) is not
// done (an error whose Is or Unwrap panics when the pool examines it is
// such a refusal too):
// it is counted in Stats.SettleFailed (metric plba.task.settle_failed),
// reported to the observer as task.Returned with the error, and the
// delivery stays leased until its lease ends (which the backend may bring
// forward: JetStream no longer renews it, so it ends with its AckWait),
// when the backend delivers it again. A Retry or a Release the backend
// answers with queue.ErrDeadLettered (its own delivery limit; a Release
// on the last delivery it allows that it could not make uncounted) is a
// dead letter, told to the task's source (a Release: also counted as a
// failed settlement). Dead letters a backend makes on its
// own (queue.DeadWatcher) are reported to the Runtime, which tells their
// sources and counts them on the queue's pool (the observer hears of
// them on a goroutine of its own: a panic or runtime.Goexit in its
// DeadLettered is logged and costs the backend's goroutine nothing); so are the tasks with a
// source that a backend finds delivered again after they succeeded
// (queue.FinishedWatcher: a settlement cut short after the success was
// recorded, which may not have told the source), whose sources are told
// task.Succeeded, at least once. Every other call into the
// backend is guarded the same way: a Lease, Extend or Stats that panics
// is that call's error (a failed lease is retried after a back-off, a
// failed extension leaves the delivery on what is left of its lease, a
// failed Stats fails Check), so that a broken backend costs the pool
// neither a worker, nor a slot, nor the process.
//
// # Completion
//
// A task that carries task.HeaderCompletion has its source told of its
// final outcome (source.Completions) after the backend confirmed the
// settlement: task.Succeeded after the ack, task.DeadLettered with the
// reason after the dead letter. Complete gets a context bounded by the
// task timeout (and Stop's ctx; an outcome settled after Stop's ctx
// ended, such as a handler that ignores its cancellation succeeding then,
// or a dead letter the backend made of a give-back then, is told within
// a short grace of its own, 50ms). A failed completion is counted
// (Stats.CompletionFailed, metric plba.task.completion_failed) and logged;
// the pool neither retries it nor turns the task into a dead letter:
// applying a completion, and retrying it, is the source's own job. A
// process that dies between the ack and the completion leaves the source
// untold (when the ack was lost too, a backend that finds the task
// delivered again tells it: queue.FinishedWatcher); the source emits the task again after its
// restart, the idempotent handler runs once more, and the completion is
// made then.
//
// Settlement never trusts the handler's error: an error whose Error method
// panics (a nil pointer of an error type returned as an error) is reported
// by a description of that panic, and any other panic while settling
// before the backend's call (or a worker dying outside its handler)
// fails the delivery like a handler error, so that the attempt counts and a poisonous task ends in the dead
// letter instead of running forever.
//
// A long-running handler keeps its lease: the pool extends it at about
// half its length, until one lease period after the handler's timeout. A
// handler that ignores the cancellation of its context keeps its worker
// (a goroutine cannot be stopped) but not its task: the lease then ends
// and the task is delivered again, another attempt, so max attempts
// bound a task that hangs every time (TestHandlerThatIgnoresItsTimeoutLosesItsLease).
// The handler's context arms its deadline timer only when
// the handler waits on it, and contexts derived from it cost no goroutine.
//
// # Supervision and control
//
// Each pool is the lifecycle component "pool/<queue>" whose details are its
// Stats. A worker goroutine that dies outside a handler, or of
// runtime.Goexit (a handler calling testing's FailNow), is replaced and
// counted (worker_restarts); the attempt it held fails, and the observer
// that saw it start hears its outcome (Finished) like any other. A
// backend call that ends its goroutine with runtime.Goexit is a failed
// call, like one that panics, and the goroutine is replaced:
//
//   - a settlement's (Ack, Retry, DeadLetter) a failed settlement
//     (settle_failed; the observer hears task.Returned with a
//     *task.SettleError when the handler succeeded, with the handler's
//     error and the failed settlement added when it failed);
//   - a give-back's (Release at Pause and Stop) ends only a goroutine of
//     its own: a failed release;
//   - a renewal's (Extend before a handler starts): its delivery goes
//     back unrun;
//   - a Lease's a failed Lease (the pool degraded, a new fetcher leasing
//     after the back-off), unless Pause or Stop cancelled it; an
//     Extend's or a Stats' on the housekeeper a failed extension or
//     check; a Probe's a failed probe.
//
// A source's Complete that calls runtime.Goexit ends only its own
// goroutine: a failed completion (completion_failed), the worker goes on.
// Pause, Resume and Resize(n) control a running pool; Check is the stalled-pool health check (ready work, nothing
// finished for StallAfter: the component turns degraded). A failed Lease
// degrades the pool until a Lease returns tasks or, while the next Lease
// waits on an empty queue, a probe of the backend (queue.Prober; memory
// and JetStream have it) reaches the queue: a pool that recovered shows
// running though no task came, and one whose backend does not answer
// stays degraded (a Lease that only waits says nothing either way). A
// healthy pool whose Lease waits probes the backend too, every
// UnreachableAfter/2 (at most 5s): once the probes failed for
// UnreachableAfter (10s), the pool shows degraded with the probe's error
// ("lease: backend unreachable for 10s: ..."), until one reaches the
// queue again; a JetStream server that went away while the pool waited
// for work makes no Lease fail (they wait for the reconnect), and a slow
// server that answers within a probe's timeout (5s) degrades nothing.
//
// # Drain
//
// Stop stops leasing, gives the hand-over buffer back at once, gives
// in-flight handlers DrainTimeout to finish, then cancels their contexts;
// their deliveries go back to the queue unsettled (task.Returned), through
// the backend's Release (no attempt counted; a Release the backend answers
// with queue.ErrDeadLettered is the dead letter it made, reported and told
// as such, also for a handler that returns only after Stop gave its
// delivery back). Nothing unfinished is ever acked. Give-backs run
// concurrently and, like every settlement once Stop began (and one in
// progress then: a dead letter waiting for a stream that lost its
// leader), are bounded by Stop's ctx as well as by the lease (a
// give-back or a settlement that starts only after that ctx ended, such
// as that of a handler that returns once Stop's ended ctx cancelled it,
// has a short grace of its own, 50ms, and Stop waits for it within two
// such graces after its grace for cancelled handlers); a settlement cut short is told to no source,
// and the backend delivers the task again. When ctx ends first, Stop returns an error naming what
// still runs (a handler that ignores its cancellation included: Stop
// gives its delivery back itself) and the settlements it cut short. Stop returns by ctx's
// deadline; Runtime.StopSources leaves half the time left to the pools
// and the backend, and Runtime.StopPools a quarter of what is left then
// to the queue backend, which closes after the pools (fx runs no stop
// hook once the stop timeout has passed). The outcomes the backend found
// on its own are told until the pools' share ends and a stop grace after
// it (never past StopPools' deadline); the telling then in progress is
// cancelled, and what is left is logged and counted in
// Stats.CompletionFailed, not told.
package worker
