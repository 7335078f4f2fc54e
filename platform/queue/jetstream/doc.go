// Package jetstream is the durable queue backend on NATS JetStream
// (github.com/nats-io/nats.go's jetstream package). It implements
// queue.Backend and passes the conformance suite in queue/queuetest.
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
// tasks, see below), <prefix>.dead.<queue> (dead letters).
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
// On the issue 15 harness (BENCHMARKS.md) a fixed buffer of 64 ran the
// JetStream runtime at about half the bare client's rate, the rate-sized
// buffer at about 0.8x. Messages waiting in the
// buffer are kept alive with in-progress acks, so they never expire there
// and their delivery count stays honest. An in-progress ack the server
// does not confirm it heard (one PING round trip for all of a round,
// within half an AckWait) does not count, and none is sent while the
// connection is down (nats.go would buffer it and report success) or
// once a message's AckWait ran out: a buffered message whose AckWait ran
// out unrenewed during an outage or a network partition is left to the
// server, which delivers it again, and not handed out beside that new
// delivery (TestBufferDoesNotOutliveAnOutage,
// TestBufferDoesNotOutliveAPartition). Likewise the lease keeper, and
// Extend, which then reports the lease lost. Close gives buffered messages back at once, for another
// replica, without counting a delivery: each goes back as Release gives
// back a delivery (a copy that carries the attempts used, then the ack of
// the original), since a negative ack would count one for a task that
// never ran (TestCloseGivesTheBufferBackUncounted). That needs the
// server: without a connection, or past Config.PublishTimeout, the rest
// is left to the server and delivered again after its AckWait, so Close
// does not hold a stopping host for its whole stop timeout during an
// outage (TestCloseDuringAnOutageReturnsSoon). Release, which a pool
// uses to give back what it leased but did not run, likewise stops
// waiting when the connection is lost (whileConnected), and then fails:
// the delivery is left to the server rather than negatively acked into
// nats.go's reconnect buffer, so the pool counts a failed release, not a
// return (TestGiveBackDuringAnOutageIsNoReturn).
//
// The pull requests and settlements go through nats.go's jetstream API:
// the puller calls Consumer.Fetch for the room left and moves each
// message into the buffer as it arrives; a delivery reads its attempt and stream sequence from
// Msg.Metadata; settlements are Msg.Ack (DoubleAck with Config.AckSync),
// Nak, NakWithDelay, InProgress and TermWithReason (Term on servers
// before 2.11, which do not read the reason). A request ends
// filled, expired (5 s) or cut short by a reconnect; a consumer deleted
// under the puller (ErrConsumerDeleted, or no consumer answering the
// next request) is created again, with its stream when that is gone too.
// Enqueue and Redrive set a deleted work stream up again as well (the
// publish no stream answered is tried once more), so a host that only
// produces, or only re-drives, heals too (TestEnqueueSetsADeletedStreamUpAgain,
// TestRedriveSetsADeletedWorkStreamUpAgain).
//
// The backend's own streams (<prefix>_DEAD, <prefix>_DONE, the advisory
// stream and its consumer), made at Start, heal too (restore.go): after
// every reconnect (the server may be a new one, without its store), when
// a finished-key record, a dead letter, a key lookup (Enqueue's, FindTasks',
// Redrive's, a duplicate's finished marker) or a read of the dead letters (ListDead,
// QueryDead, GetDead, Redrive, Purge, Stats, Queues) finds no stream,
// and when the advisory consumer is deleted under its reader, one
// goroutine of the backend sets up again whatever is missing, one round
// at a time: those streams, the advisory consumer (and the reading of
// it, which ended with the old one), and the work streams and consumers
// of the queues this process uses; it logs at Warn what it created. The
// record, dead letter, lookup or read that found no stream waits for that
// round and is tried once more (each is idempotent; a read then finds the
// new, empty stream), except a duplicate's finished-marker lookup in
// Enqueue, which only asks for the round (the duplicate is marked held by
// an unknown task, as the marker went with the stream); an Ack's record is
// retried that way too, so the ack goes out rather than the task running
// again after it was reported done (TestServerThatLostItsStoreIsSetUpAgain,
// TestDeletedStreamsAreSetUpAgain, TestDeletedAdvisoryConsumerIsSetUpAgain,
// TestReadsSetDeletedStreamsUpAgain).
// What the lost store held (queued tasks, dead letters, finished keys) is
// gone with it.
//
// Fetch rather than Consume or Messages, because those read ahead: they
// ask for more messages as soon as the previous ones were handed over,
// whether the buffer has room or not, so a bounded buffer must stop
// taking them, and what arrives meanwhile waits in nats.go's own queue,
// out of reach of the in-progress acks. With Lease not called (a paused
// or busy pool) the server then redelivers those messages, counting a
// delivery for each (TestPrefetchIsBoundedAndKeptAlive fails on a
// Consume-based puller: 7 messages held with a prefetch of 4, and tasks
// redelivered). Fetch asks for exactly the room in the buffer, so every
// message delivered to this process is in the buffer and kept alive.
// The cost, measured against the hand-written pull protocol this
// replaced (BENCHMARKS.md, issue 15): 6 more allocations per task
// (Fetch's loop armed a timer for every message, 3 of them, which
// nats.go v1.56.0's Fetch no longer does; the jetstream.Msg wrapper;
// its metadata) and, on a loaded 2-core machine, 1 to 4 µs more CPU
// per task (2 to 6%: the pull path itself, and a second goroutine
// hand-over per message), not visible in tasks per second.
// A Consume-based puller measured no cheaper within the spread. No part
// of the hand-written protocol is kept.
//
// # Leases, retries and dead letters
//
//   - Lease = AckWait. Config.AckWait is the consumer's lease; a delivery's
//     LeaseUntil is at least the time its AckWait ends. A longer lease
//     asked of Lease or Extend (the worker pool's lease extension) is kept
//     with in-progress acks (InProgress), each of which restarts AckWait: one
//     keeper goroutine per backend looks at the deliveries in flight every
//     quarter AckWait and refreshes those half of whose AckWait has
//     passed (no timer per delivery). A delivery being settled is renewed
//     too, up to its lease: a settlement can take longer than AckWait (a
//     dead-letter copy's or a Release's publish while a stream elects a
//     leader), and the server would otherwise deliver the task again
//     meanwhile, to a worker that runs it while the first settlement
//     still goes on to report another outcome
//     (TestSlowDeadLetterKeepsItsLease). So is the delivery of an Ack
//     without Config.AckSync that records a finished key: Ack returns
//     once the record is published, its ack goes out when the server
//     stored it (up to Config.PublishTimeout later), and a redelivery
//     before then would find no marker and run the task again
//     (TestAckWaitingForItsRecordKeepsItsLease). So a settlement's network calls
//     are bounded by the lease (past it nothing renews the server's
//     AckWait): cut short there, it fails with queue.ErrLeaseLost (and
//     the context's DeadlineExceeded), which callers branch on, while one
//     its caller's ctx cut short (a stopping pool) fails with that ctx's
//     error alone (TestFailedSettlementIsNotRenewed); and before its last word (ack, negative ack, term) it
//     checks that the server's AckWait did not run out unrenewed (the
//     in-progress acks were not confirmed: a partition); if it did, the
//     settlement fails with queue.ErrLeaseLost rather than report an
//     outcome beside the redelivery's (TestSettlementPastItsLeaseReportsNoOutcome,
//     TestSettlementWhoseLeaseRanOutUnrenewedReportsNoOutcome). What it
//     stored before stays: a dead letter (see "A dead letter is final"),
//     a Release's copy (the task delivered twice). A delivery whose
//     settlement failed is not renewed: its lease (LeaseUntil) ends with
//     the server's AckWait, which delivers it again then rather than at
//     the end of the lease the pool asked for (TestFailedSettlementIsNotRenewed).
//   - Retry = a negative ack with an explicit delay (NakWithDelay),
//     computed by the pool's retry policy; the consumer's BackOff list does
//     not apply to a plain nak, so none is configured. The next delivery's
//     attempt is the message's delivery count, less its early deliveries
//     (see Max attempts). The server writes a
//     consumer's state (deliveries counted, acks, naks, terms) to its
//     file store at most every 100ms: a process killed with its embedded
//     server forgets the last of them, so after the restart an attempt
//     can be delivered again under the same number (a task may run more
//     often than its max attempts, though never past the last number),
//     and an acked or dead-lettered task comes back. A keyed one is then
//     recognised by its finished-key marker and not handed out (see
//     "De-duplication, headers, delays" below); one with a generated key
//     runs again, or, past its last attempt, is dead-lettered again by
//     the worker pool without running (the dead letter's Nats-Msg-Id
//     keeps one copy; TestCrashWhileDeadLetteringNeverAlsoSucceeds in
//     cmd/host). A delivery the server sent that never reached this
//     process (lost with the connection to a server that went down)
//     counts too: the next one's attempt skips its number, and a task
//     can reach its last attempt having run fewer times.
//   - Release (a delivery the pool leased but did not run, given back on
//     pause or stop) = publish the task again as a new message, with the
//     attempts it had used in its Plba-Task header and a Nats-Msg-Id of
//     its own, then ack the original: a nak would count a delivery for work
//     that never happened. A crash in between delivers the task twice. A
//     copy without an answer within Config.PublishTimeout is sent again
//     with its Nats-Msg-Id, as a dead-letter copy is (see Dead letter
//     below; TestReleasedCopyWhoseAnswerIsLostIsSentAgain): waited for
//     until the lease ended, it used to fall back to a nak then, which
//     counted the delivery beside a copy stored.
//   - Max attempts = MaxDeliver. A Retry on the last allowed delivery
//     dead-letters the task instead and returns queue.ErrDeadLettered. A
//     task whose lease expires on its last allowed delivery (a crashing or
//     hanging handler) is reported by the server's MAX_DELIVERIES
//     advisory, and the server keeps the message without delivering it
//     again. Advisories are captured by the stream <prefix>_ADV_<consumer>
//     (one subject per work stream) and read by a durable consumer, so
//     none is lost while no process listens or one is slow: the replica
//     that gets an advisory copies the message to the dead letter, calls
//     the WatchDead function (queue.DeadWatcher), deletes the message and
//     only then acknowledges the advisory. A crash or a failure in between
//     leaves the advisory and the message; the next process (or the next
//     try) does it again, the watcher is told at least once (once by the
//     process that told it, which remembers it until the message is
//     deleted; again by the next process after a crash), and the task
//     has one dead letter: its copy's Nats-Msg-Id de-duplicates it within
//     the dead-letter stream's duplicate window, and an advisory stored
//     more than half the window ago first looks for its copy among the
//     queue's dead letters stored since (a headers-only scan: about 1 ms,
//     plus 2 ms per hundred dead letters, on an embedded server). The
//     watcher, and a keyed task's finished marker, get that dead letter as
//     it is stored (reason, time, attempts), the one ListDead shows: a
//     copy stored before (by a DeadLetter whose term was lost on the last
//     delivery, or by an earlier handling) keeps its reason; the server's
//     acknowledgement of a de-duplicated copy gives its sequence, and it
//     is read back (a read that fails is logged, and the advisory's own
//     reason and time told) (TestToldDeadLetterIsTheStoredOne). Its
//     attempts count those used before a Release, as the delivery's do,
//     and not the deliveries this process gave back before the task's
//     NotBefore (a server without schedules, a bounded stream, a schedule
//     that fired early): that count is kept in memory until the message
//     is settled for good, so an advisory handled by another process, or
//     after a restart, counts them as attempts
//     (TestEarlyDeliveryIsNotAnAttempt). The server counts them as
//     deliveries: a task delivered early k times gets MaxDeliver-k
//     attempts before it is dead-lettered (a Retry on its last delivery,
//     or the advisory), and its dead letter keeps the attempts it used.
//     With MaxDeliver 1, an early delivery is the task's only one: it is
//     dead-lettered without running, and its dead letter says so, with 0
//     attempts (TestEarlyDeliveryOnTheOnlyDeliveryIsToldAsSuch). A host therefore refuses a
//     max_deliver that is not above a route's max attempts (exit 2,
//     naming both keys), which spares a delayed task's one early delivery.
//   - Dead letter = a copy of the task, its original headers and payload,
//     plus Plba-Dead-Reason, Plba-Dead-At and Plba-Dead-Attempts headers,
//     published to the dead-letter stream <prefix>_DEAD (limits retention)
//     and then the delivery is terminated (with the reason from 2.11 on:
//     an older server does not take "+TERM <reason>" for a term and would
//     deliver the task again). A copy without an answer within
//     Config.PublishTimeout (stored, its answer lost with a stream leader)
//     is sent again with its Nats-Msg-Id, which the server de-duplicates
//     (error 10158, the same id still being stored, is waited out), rather
//     than waited for until the lease ends
//     (TestDeadLetterCopyWhoseAnswerIsLostIsSentAgain). ListDead reads
//     that stream by subject, Redrive republishes a copy to the queue
//     (fresh attempts), records its key as queued again (a finished-key
//     marker without outcome, written only over the dead letter's, see
//     done.go) and deletes the dead letter, Purge deletes. A Redrive cut
//     short between the copy and the delete left the dead letter beside
//     its queued copy: the copy's next delivery (its first, or a later
//     one when a process that died had prefetched the first) deletes it
//     (its Nats-Msg-Id names the dead letter's sequence; redrive.go), and
//     is not handed out while it could not (delivered again later). A
//     message of that stream that is not a dead letter is listed as the
//     task "dead-seq-<n>" of kind "?", and Redrive leaves it. Redrive
//     leaves a dead letter whose key's marker says succeeded (the task
//     ran again after it and succeeded: a re-drive that stopped before it
//     deleted the dead letter, or one stored by a version without the
//     check below) and says so in its error: re-driving it would run a
//     succeeded task once more. Only a key's marker tells, so within the
//     duplicate window after that success. Enqueue refuses
//     (queue.ErrTooLarge) a task whose message leaves no room for its
//     dead-letter copy's headers within the server's max_payload, or
//     within the 64 KiB JetStream allows a message's headers. A message
//     published by someone else whose copy would exceed either (nats
//     pub leaves no such room) is dead-lettered without its payload, or
//     without its headers, or without both, whichever is the least that
//     fits: the reason says what was not kept, Plba-Dead-Dropped marks
//     it, and Redrive leaves it.
//   - A dead letter is final. Its copy is stored before the work message
//     is terminated (the copy is the record; a term first would lose the
//     task if the copy then failed), so a term that does not reach the
//     server (the connection lost at that moment) or a process gone
//     between the two leaves the message, which the server delivers again
//     after AckWait; so does a DeadLetter whose lease ran out before its
//     term (see Lease = AckWait: it fails, with queue.ErrLeaseLost when
//     its copy was stored; a copy stored only after the server delivered
//     the task again does not stop that delivery, which runs). Running it
//     again could make it succeed: the source
//     told succeeded and its key marked so while its dead letter stays
//     listed, for an operator to re-drive. Removing the dead letter when
//     such a run succeeds instead was weighed and not taken: the runtime
//     had decided and recorded dead-lettered (the dead letter, the key's
//     marker), and a second run contradicts a decision its source may
//     have heard already. So every delivery after the first (NumDelivered
//     > 1: retries, expired leases) looks for the copy of its message
//     (redelivered.go): the queue's newest dead letter is read (one get,
//     about 0.1 ms on an embedded server; enough when it is that copy or
//     older than the message), else the queue's dead letters stored since
//     the message are scanned headers-only (about 0.6 ms, plus about 1 ms per
//     hundred). A found copy finishes the delivery as that dead letter:
//     the WatchDead function is told (the pool whose DeadLetter failed
//     told the source nothing; a process that died told nothing; a term
//     lost silently after DeadLetter returned means the source hears the
//     same dead letter twice, at least once as for advisories), a keyed
//     task's key is recorded as dead-lettered, the message terminated,
//     and it is not handed out. A lookup that fails leaves the message to
//     the server, delivered again after AckWait (as a dead letter's copy
//     that fails does). A first delivery pays nothing, nor does one that
//     follows this process's own Retry of the delivery just before it
//     (that delivery passed the lookup and its Retry made no dead
//     letter), so
//     an incident that dead-letters many tasks does not slow this host's
//     retries; deliveries after an expired lease, a crash or another
//     process's Retry look.
//
// # Bounded storage
//
// The dead-letter stream is bounded by Config.Dead: dead letters expire
// after dead.max_age (30 days), and the stream holds at most
// dead.max_bytes (1 GiB) and dead.max_msgs (no bound). Its discard policy
// is "new", so the server never drops a dead letter silently: when one
// does not fit, the backend deletes the oldest until it does, logs each
// and counts it (Status.DeadDiscarded, metric plba.queue.dead_discarded).
// Every host on the stream prefix must have the same bounds: a host
// connected to servers it does not own refuses to start on a difference,
// as for replicas, duplicate_window, ack_wait, max_deliver and
// max_ack_pending (agree.go). Work streams have no bound by default; with
// Config.MaxMsgs or MaxBytes they use discard policy "new": a full stream
// refuses new tasks and Enqueue waits (back-off up to 1s) until there is
// room or its context ends, so the pressure reaches the source and no
// queued task is dropped. Every host on the stream prefix must have the
// same max_msgs and max_bytes too: the queue's set-up (Declare, the
// first Enqueue or Lease) of a host with others fails naming the key,
// where the last host to set a stream up applied its own under the
// others.
// The server cannot schedule messages in such a stream, so NotBefore
// tasks wait there as delayed negative acks, as on servers before 2.12.
//
// # De-duplication, headers, delays
//
// A task's key is its Nats-Msg-Id (a key with a blank at either end, which
// nats.go would trim on the wire, is represented by its SHA-256), so the
// stream refuses a second task with the same key within
// Config.DuplicateWindow (default 2 minutes) of the first. The server
// keeps that table in memory and rebuilds it at start
// from the messages it still stores, which no longer include acked tasks;
// so the backend also records the key of every finished (acked or
// dead-lettered) task, before the ack, as an empty marker message in the
// stream <prefix>_DONE (MaxAge = DuplicateWindow, one message per
// subject <prefix>.done.<queue>.<128-bit hash of the key>), and Enqueue
// looks each task's key up there (direct get, 32 at a time) before it
// publishes: a key is accepted once whether the first task is still
// queued, or finished within the window, across restarts and replicas.
// The cost is one stored publish per settled task and one lookup per
// enqueued task (BENCHMARKS.md), so it is paid only for tasks whose
// producer chose the key or the id: a task enqueued with neither gets a
// fresh key from task.Prepare (task.KeyGenerated) that no other producer
// can know, so nothing can re-emit it after a restart; its message says
// so (the key-generated flag of its Plba-Task header), it is not looked
// up, and its ack is the ack alone (a retried publish of the same task is
// still refused by the server's window). A message without that flag (or
// the Plba-Task-Key-Generated header of the earlier format) is
// remembered, as every message stored before the flag existed. Measured
// on the peers harness, the marker was 1.55× of worked/s on keyless
// no-op tasks. A crash between the marker and the ack (or, for a dead
// letter, the term) leaves the task queued and drops a re-emitted copy;
// the queued task's next delivery finds its marker newer than its
// message and is acked (or terminated) without being handed out
// (finishedBefore: one direct get for each delivery of a keyed task
// after its first, and for the first of one stored before the owned
// embedded server started: killed with its process, the server before it
// may have forgotten the deliveries), so the task does not run again after it finished nor
// end in a second outcome. A success so found, of a task whose source
// waits for it, is reported to the WatchFinished function
// (queue.FinishedWatcher), so that the runtime tells the source, which
// the settlement cut short may not have done (dropFinished). A task whose key Prepare generated has a
// marker only for a success on its last attempt (queue.Delivery.Last,
// set by the pool), or for one a source waits to hear of
// (task.HeaderCompletion): without it, a lost ack would bring the task
// back, past its last attempt to be dead-lettered although it succeeded,
// or to run again and tell its source a second outcome. Its deliveries
// after the first, unless this process's own Retry settled the one
// before, look the marker up; other keyless tasks have none before
// their last attempt, and a lost ack runs them again (at least once). A copy emitted in the very
// moment its first task finishes, more than a window after that one was
// enqueued, can be accepted.
//
// A dropped task is marked (see queue.Producer): task.MarkFinished when
// its key's marker records an outcome, task.MarkHeld when the key is held
// by a task that has not finished. The publish ack of a duplicate names
// the stored message it duplicates; Enqueue reads that message (one get
// per such task) and marks the task held by the task it carries, unless
// that is the task itself, enqueued again (held.go), which is marked
// stored already instead (task.MarkStoredAgain; not when this very call
// stored it, the same Task twice in one batch). A holder that moved
// (a released copy, a message schedule that fired) or cannot be read
// marks it held by an unknown task ("").
//
// A task's message has the payload as its data and three kinds of
// headers: Task.Headers under their own names (traceparent, tracestate,
// baggage, the attempt's parent, ...), the Nats-Msg-Id (the key, or a key
// derived from it for a released copy or a redrive), and the task's own
// fields in one header of text, readable with the nats CLI:
//
//	Plba-Task: kind=invoice.send at=2026-12-04T14:59:00.123456789Z key-generated
//
// (fields kind, id, key, at, not-before, attempts and the flag
// key-generated; the id only when it differs from the Nats-Msg-Id, the
// key only when it differs from the id; '%', blanks and control bytes in
// kind, id and key written as %XX). A keyless task's message has three
// headers, which every delivery decodes. A Plba-Task that does not parse
// (a bad escape, an unknown flag, a field twice, no kind), or is given
// twice, makes the message undecodable: it is dead-lettered with the
// reason, as a message without one, as the task "seq-<n>" (its sequence in the work stream)
// of kind "?" with the message's payload and all its headers (those the
// package or the server own, the Plba-Task that did not decode among
// them, under "Plba-Foreign-" and their name; the values of a header
// given more than once joined by ", "; see foreignStandIn). A lone CR or
// LF that a client sent in a task's Nats-Msg-Id, or in a field of the
// earlier form, makes the message undecodable too: no copy could carry
// it. Versions before Plba-Task wrote one header per field
// (Plba-Task-Kind, Plba-Task-Id, Plba-Task-Key, Plba-Task-Enqueued-At,
// Plba-Task-Not-Before, Plba-Task-Attempts, Plba-Task-Key-Generated);
// messages stored that way, queued or dead-lettered, are still read (one
// with both forms, which no version writes, is undecodable). A
// version that knows only that form dead-letters a message with a
// Plba-Task header as undecodable: during a rolling upgrade, hosts of the
// earlier version must stop consuming before the first new one enqueues.
// DecodeTask decodes either form for tools. A task's fields and its
// Task.Headers come back unchanged on every delivery, after a retry, in
// the dead letter and after a redrive. A task with a future NotBefore is
// stored as a one-shot message schedule (Nats-Schedule "@at …") that the
// server turns into a ready task at that time; the schedule survives
// restarts like any stored message.
//
// The server records a consumer's ack before it deletes the acked message
// from the work stream; a process killed or a server stopped between the
// two keeps a message the consumer has acked (at or below its ack floor),
// which the server never delivers again and, on work-queue retention,
// never removes. Opening a queue deletes such messages (logged as a
// warning) and Stats does not count them (orphan.go).
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
// context's error in the EnqueueError. What "stored" means is
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
