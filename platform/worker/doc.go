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
// expired, and delivered again by the backend as a new attempt) and hands
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
//   - nil: the completion (if the task carries task.HeaderCompletion) is
//     reported with task.Succeeded, then the delivery is acked. A failed
//     completion turns the delivery into a failure, so it is retried and
//     the completion is not lost; when it still fails at the last attempt
//     the task is dead-lettered ("handled, but its source could not be
//     told") without telling the source anything, never as dead-lettered;
//   - task.Permanent: dead letter with the error's text as reason, after
//     the completion with task.DeadLettered;
//   - task.RetryAfter(d): retried at now+d (still an attempt: past the
//     maximum attempts it is dead-lettered);
//   - any other error: retried after the back-off (Initial × Multiplier^(n-1)
//     capped at Max, ±Jitter), dead-lettered with the last error as reason
//     once the attempt reaches MaxAttempts (the route's, else the pool's);
//   - a kind without a route: dead letter with "no handler for kind X".
//
// Settlement never trusts the handler's error: an error whose Error method
// panics (a nil pointer of an error type returned as an error) is reported
// by a description of that panic, and any other panic while settling (or
// a worker dying outside its handler) fails the delivery like a handler
// error, so that the attempt counts and a poisonous task ends in the dead
// letter instead of running forever.
//
// A long-running handler keeps its lease: the pool extends it at about
// half its length.
//
// # Supervision and control
//
// Each pool is the lifecycle component "pool/<queue>" whose details are its
// Stats. A worker goroutine that dies outside a handler is replaced and
// counted (worker_restarts). Pause, Resume and Resize(n) control a running
// pool; Check is the stalled-pool health check (ready work, nothing
// finished for StallAfter: the component turns degraded).
//
// # Drain
//
// Stop stops leasing, gives the hand-over buffer back at once, gives
// in-flight handlers DrainTimeout to finish, then cancels their contexts;
// their deliveries go back to the queue unsettled (task.Returned), through
// the backend's Release when it implements Releaser (no attempt counted),
// else Retry at now. Nothing unfinished is ever acked. Give-backs run
// concurrently and, like every settlement once Stop began, are bounded by
// Stop's ctx as well as by the lease; when ctx ends first, Stop returns an
// error naming what still runs.
package worker
