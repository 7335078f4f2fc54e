// Package jetstream is the durable queue backend on NATS JetStream
// (github.com/nats-io/nats.go's jetstream package). It implements
// queue.Backend and passes the conformance suite in queue/queuetest.
//
// This is the overview. The reference behind it (how the puller and the
// settlements behave in outages, which streams are set up again, the
// details of leases, retries, releases and dead letters, the bounds of
// the streams, how keys, headers and delays are stored, and the tests
// that show each) is docs/jetstream.md in the repository; how the backend
// fits the runtime is docs/architecture.md.
//
// # Streams and consumers
//
// Every plba queue has a stream of its own, <prefix>_Q_<queue>, with
// work-queue retention: a message is deleted when it is acknowledged. One
// stream per queue rather than one stream with a subject per queue,
// because a stream is JetStream's unit of replication, limits, leadership
// and purge: a busy or poisoned queue neither slows down nor fills up the
// others, a queue can be inspected, backed up or deleted alone, and its
// stream leader lands on any server of a cluster, which spreads the load.
// The cost is one stream (and one Raft group when replicated) per queue,
// which suits the tens of queues a host has.
//
// Queue names are encoded into NATS tokens: letters, digits and '-' pass,
// every other byte becomes '_' and two hex digits. Subjects:
// <prefix>.q.<queue> (ready tasks), <prefix>.s.<queue>.<id> (delayed
// tasks, see below: one subject each, its id, and for a task whose
// producer gave its key or id the key's Nats-Msg-Id beside it, encoded
// as a token), <prefix>.dead.<queue> (dead letters).
//
// Each work stream has one durable pull consumer, Config.Consumer
// ("plba-workers"), with explicit acks, shared by every replica of the
// host: whichever process pulls a message holds it until it settles it or
// its AckWait passes, so several host processes share the work and each
// task goes to one of them at a time.
//
// # Prefetch
//
// Each process keeps a prefetch buffer per queue, filled by one pull
// request (Consumer.Fetch) at a time for the room left in it, once half
// of it is free; Lease takes from that buffer, in stream order. The
// buffer holds about 10ms of work at the rate Lease calls take messages,
// between Config.Prefetch (64) and Config.MaxPrefetch (1024): a slow or
// idle pool keeps Prefetch messages, so other replicas get their share of
// long tasks, and a fast one is not held up by the requests' round trips.
// Messages waiting in the buffer are kept alive with in-progress acks, so
// they never expire there and their delivery count stays honest; one
// whose AckWait ran out unrenewed (an outage, a partition) is left to the
// server, which delivers it again. Close gives buffered messages back at
// once, for another replica, without counting a delivery. Fetch is used
// rather than Consume or Messages because those read ahead of the
// buffer's room. A consumer or work stream deleted under the backend is
// created again, and so are the backend's own streams a server lost
// (restore.go).
//
// # Leases, retries and dead letters
//
//   - Lease = AckWait. Config.AckWait is the consumer's lease; a longer
//     lease asked of Lease or Extend is kept with in-progress acks by one
//     keeper goroutine per backend. A settlement that could not finish
//     within the lease, or whose AckWait ran out unrenewed, fails with
//     queue.ErrLeaseLost rather than report an outcome beside the
//     server's redelivery.
//   - Retry = a negative ack with an explicit delay (NakWithDelay),
//     computed by the pool's retry policy.
//   - Release (a delivery the pool leased but did not run) = publish the
//     task again as a new message, with the attempts it had used, then
//     ack the original: a nak would count a delivery for work that never
//     happened. A copy the server does not store (a full bounded stream)
//     fails the Release, which says what became of the delivery: given
//     back with a nak, counted; on the last allowed delivery, after
//     which the server delivers the message no more, the copy is offered
//     again while the lease leaves time, then the task is dead-lettered
//     with a reason that says so (queue.ErrDeadLettered); a copy whose
//     offers all went unanswered, maybe stored, leaves the delivery to
//     the MAX_DELIVERIES advisory, which looks for the copy in the work
//     stream and dead-letters the task only when none is there (a
//     released copy's delivery deletes the message it copies first).
//   - Max attempts = MaxDeliver. A Retry on the last allowed delivery
//     dead-letters the task instead; a task whose lease expires on its
//     last delivery is dead-lettered from the server's MAX_DELIVERIES
//     advisory, read through a durable consumer so that none is lost.
//   - Dead letter = a copy of the task with Plba-Dead-Reason, -At and
//     -Attempts headers in the stream <prefix>_DEAD, stored before the
//     delivery is terminated. A dead letter is final: a delivery after
//     an expired lease, a crash or another process's Retry looks for its
//     message's copy and, when it finds one, finishes as that dead letter
//     instead of running. ListDead, Redrive and Purge read, re-drive and
//     delete dead letters; each dead letter Redrive or Purge leaves for a
//     reason of its own (succeeded since, claimed by the other action,
//     ...) is reported by a queue.DeadLetterError.
//
// # Bounded storage
//
// The dead-letter stream is bounded by Config.Dead (30 days, 1 GiB by
// default); a dead letter that does not fit makes room by deleting the
// oldest, each logged and counted (Status.DeadDiscarded, and the queue's
// Stats.DeadDiscarded: this process's discards). Work streams
// have no bound by default; with Config.MaxMsgs or MaxBytes a full
// stream refuses new tasks and Enqueue waits for room, so the pressure
// reaches the source and no queued task is dropped. Every host on the
// stream prefix must have the same bounds: a difference fails the start
// of a host that does not own its server, or the queue's set-up
// (agree.go).
//
// # De-duplication, headers, delays
//
// A task's key is its Nats-Msg-Id, so the stream refuses a second task
// with the same key within Config.DuplicateWindow (2 minutes). The
// backend also records the key of every finished task whose producer
// chose its key or id, before the ack, as a marker in the stream
// <prefix>_DONE, which Enqueue looks keys up in, so such a key is
// accepted once whether its first task is still queued or finished
// within the window, across restarts and replicas. A task whose key
// task.Prepare generated is not looked up. A generated key and a key a
// producer gave are separate spaces, and the ids of Release and redrive
// copies a third: a producer's key that could be taken for another (one
// written as a generated id, as a copy's id, with a blank at an end or
// starting with Plba-Key-) has "Plba-Key-SHA256:" and the hex of its
// SHA-256 as its Nats-Msg-Id, so no producer can take the key of a
// keyless task still to come, in this process or another (codec.go,
// msgIDOf), and a keyless task's success, recorded for its redelivery,
// has a marker a producer's key written the same never meets
// (doneSubject). A dropped task is marked finished or held (see
// queue.Producer).
//
// A task's message has the payload as its data, Task.Headers under their
// own names, the Nats-Msg-Id, and the task's own fields and traceparent
// in one header of text, readable with the nats CLI:
//
//	Plba-Task: kind=invoice.send at=2026-12-04T14:59:00.123456789Z key-generated traceparent=00-…-01
//
// A message that does not decode is dead-lettered with the reason.
// DecodeTask decodes a message for tools. A task with a future NotBefore
// is stored as a one-shot message schedule that the server turns into a
// ready task at that time; on servers before 2.12, and in a work stream
// with bounds, which the server cannot schedule messages in, it waits as
// a delayed negative ack instead.
//
// # Stats
//
// Stats come from stream and consumer info: Ready is the consumer's
// pending count plus this process's prefetch buffer, InFlight its pending
// acks minus those and minus this process's retries waiting out their
// delay, Delayed the schedules plus those retries. With several replicas,
// another replica's buffered messages and delayed retries count as in
// flight.
//
// # Embedded and external servers
//
// Mode "embedded" (the default when no URL is set) starts a nats-server in
// the process (package embedded) with file storage under
// Config.Embedded.StoreDir and connects to it in process, without a
// network listener unless Config.Embedded.Listen is set. The server takes
// an exclusive lock on the store directory first (flock on
// <store_dir>/plba.lock, which holds its pid): a second process on the
// same store fails to start, naming the directory and the holder, rather
// than corrupting it; a store directory it cannot use fails the start at
// once with the cause. Mode "external"
// connects to Config.URL/URLs with user/password, token, NKey seed or JWT
// credentials, and optional TLS; streams have Config.Replicas (1 or 3)
// replicas with Config.Storage ("file" or "memory").
//
// # Durability
//
// Enqueue publishes a batch asynchronously and returns only after the
// server acknowledged every message (and, with replicas, after a quorum
// stored it); the acks are collected by the connection's async publish
// callbacks, and a missing one fails its task after Config.PublishTimeout.
// A task whose publish was sent and got no answer (that timeout, a lost
// connection, the caller's context ending) may be stored all the same:
// its error wraps queue.ErrOutcomeUnknown (enqueueing it again with the
// same key is safe); a refusal, or a publish never sent, does not.
// At most Config.MaxAsyncPending publishes are in flight at once (the
// publish window, window.go, shared with the finished-key records of the
// ack path): a larger batch waits for acks to make room, as long as its
// context allows, and the tasks it could not publish fail with the
// context's error in the EnqueueError. A message the server acknowledged
// is done with (nats.go holds it no more once its ack callback ran), and
// its memory serves the next tasks' messages (taskMsg.recycle); one
// without an answer is left to the garbage collector. What "stored" means is
// Config.Sync: with "interval" (the default) the server writes to the
// file system at once and flushes to disk every sync interval (2 minutes
// unless Config.Embedded.SyncInterval says otherwise), so an acknowledged
// task survives a crash of the process but not a power cut or kernel
// crash within that interval. With "always" every write is flushed before
// it is acknowledged, which survives power cuts and costs throughput
// (BENCHMARKS.md has both). External servers follow their own sync
// setting; replicas on several machines are the usual answer there.
//
// # Connection health
//
// Check (and HealthCheck, for the health registry) fails with
// ErrUnreachable while the connection is down or JetStream does not
// answer, and with ErrQueueUnavailable, naming the queue, while the work
// stream of a queue this process has set up is missing (the check asks
// for it to be set up again, and passes once it is), has no leader (a
// clustered stream that lost its quorum) or does not answer its
// information request: one request per such queue per check, at most 8
// at a time, within the check's timeout. The connection reconnects forever with exponential back-off
// (100ms to 5s, jittered); every disconnect and reconnect is logged and
// counted in Status.
//
// Probe (queue.Prober) tells a worker pool whether its queue is reachable
// while its Lease waits on an empty queue: ErrUnreachable at once while
// the connection is down, and until the queue is set up and its puller
// runs, then one request for the durable consumer, which fails when it
// does not get its answer within the probe's ctx (a partition). A Lease
// whose server is down does not fail: setting its queue up and fetching
// wait for the reconnect (until the Lease's ctx ends); it fails on what
// the server refuses (settings that differ from the queue's, limits,
// permissions). So a pool learns of an outage from its probes: it shows
// degraded once they failed for its UnreachableAfter, and running again
// once one reaches the queue (platform/worker).
package jetstream
