// Package queuetest is the conformance suite every queue backend passes.
//
// A backend's test calls Run once:
//
//	func TestConformance(t *testing.T) {
//		queuetest.Run(t, queuetest.Features{FIFO: true}, func(t *testing.T) queue.Backend {
//			return memory.New(memory.Options{})
//		})
//	}
//
// Run starts one parallel subtest per case. Every case calls the factory for
// a backend of its own and uses queue names of its own (unique per case and
// per run), so cases never interfere, even when every backend is a client
// of one shared external server. The suite closes each backend when its case
// ends (Close is idempotent, so a case may close it earlier); the factory
// registers the cleanup of anything else it started (servers, directories)
// with t.Cleanup.
//
// Features says what the backend guarantees beyond the port's contract (FIFO
// order, a de-duplication window after ack, its own max-deliveries limit,
// durability across a restart) and how precise its timing is; cases adapt to
// it instead of being skipped wholesale.
//
// The cases cover: ack removes; retry is not delivered before its time and is
// delivered after it with the attempt increased; dead letters keep task and
// reason, are not delivered again, and ListDead, Redrive and Purge work
// (each dead letter they leave reported with a queue.DeadLetterError of
// its own id);
// the backend's max-deliveries
// limit; de-duplication by key, with generated keys and producers' keys
// apart (a producer's key written as an id still to come takes no keyless
// task's key, nor does an id given so); a duplicate of a finished task is marked
// with its outcome, and one of a re-driven dead letter, queued again, is
// not; a task that arrives with the mark of a
// dropped duplicate (task.HeaderFinished) is stored unmarked; lease expiry redelivers and the old
// delivery's settlements return queue.ErrLeaseLost; Extend keeps a lease
// alive; Release gives a delivery back at once without counting its
// attempt; no double delivery among concurrent consumers; batch enqueue (whole
// or nothing, FIFO where promised); NotBefore; exact stats; a 1 MiB payload;
// headers including W3C trace context (traceparent, tracestate, baggage),
// also after a retry and a redrive; cancellation and Close unblocking Lease;
// Close waiting for in-flight deliveries (and, for durable backends, their
// redelivery after a reopen); Queues; ErrClosed after Close; ErrInvalidTask.
//
// Faulty wraps any backend and injects errors and latency into its port
// methods, for the tests of code that uses a backend.
package queuetest
