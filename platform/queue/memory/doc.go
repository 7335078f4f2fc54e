// Package memory is the in-memory queue backend: the fastest, for tests,
// demos and jobs that may be lost when the process ends. It implements
// queue.Backend (and passes the conformance suite in queuetest) plus
// Release, which the worker pools use to give back unstarted deliveries
// without counting an attempt.
//
// # Bounds and back-pressure
//
// Every queue holds at most Options.Capacity tasks: ready, delayed and in
// flight (dead letters do not count). A batch needs room only for the
// tasks it stores: duplicates (of stored keys, or of an earlier task of
// the batch) need none. Enqueue blocks while a queue lacks
// room for a batch, until an ack or dead letter frees it or ctx ends (its
// error, wrapping ctx's, then names the full queue); with
// Options.FailFast it returns queue.ErrFull at once instead. Blocked
// producers are woken in the order they blocked as room frees up; a
// producer that arrives just then may take the room first, and the woken
// one waits again (no strict first-come order). A batch is stored as a
// whole or not at all, also when it spans several queues. Dead letters
// are kept until purged or re-driven; they do not count against Capacity
// but against their own bound, Options.MaxDead per queue (10,000 by
// default): a dead letter beyond it discards the queue's oldest one,
// which is counted (queue.Stats.DeadDiscarded, the metric
// plba.queue.dead_discarded) and logged, never lost silently.
//
// # Time
//
// Retries, NotBefore and lease ends are kept in per-queue heaps; one
// time.AfterFunc timer, set to the earliest due time, wakes blocked Lease
// calls, so an idle backend runs no goroutine. An expired lease makes its
// task ready again with the attempt counted; Options.MaxDeliveries
// dead-letters a task whose leases expired that many times, and reports
// it to the function registered with WatchDead (queue.DeadWatcher), so
// that its source hears of it like of any dead letter.
//
// # De-duplication
//
// A task's Key is refused while a task with that key is live (ready,
// delayed, in flight or dead) and, with Options.DedupWindow, for that long
// after it was acked or purged, within Options.MaxFinishedKeys per queue
// (beyond, the oldest key is forgotten before its window ends, counted in
// queue.Stats.FinishedKeysForgotten and logged). A dropped task is marked with what holds
// its key (queue.Producer): the outcome of a finished task, or the id of a
// live one (task.MarkHeld); the same task enqueued again while stored is
// marked stored already (task.MarkStoredAgain), not held. A key
// task.Prepare generated (task.KeyGenerated) and a key a producer gave
// (Key, or an ID standing for it) are two keys even when written the
// same: a producer's key equal to a generated id, one seen or one still
// to come, is refused only by producers' keys, and neither holds nor
// takes the generated key's task. FindTasks by key finds both.
//
// # Sharing
//
// The backend keeps the enqueued *task.Task values; deliveries carry
// shallow copies whose Payload and Headers are shared and read-only. The
// backend never writes into them: a task it stored before (one whose late
// handler may still read its headers) that is enqueued again and dropped
// gets a copy of its headers carrying the mark.
// Nothing survives the process: Close drops what is stored once in-flight
// deliveries are settled (or ctx ends).
package memory
