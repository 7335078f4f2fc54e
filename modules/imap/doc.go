// Package imap is an IMAP mailbox as a task source: one task per message
// (payload: the raw RFC 5322 bytes), and, once the task is done, the
// message flagged \Seen and/or moved to a folder (Processed, or Failed for
// a dead letter).
//
// Where to find what:
//
//   - source.go: Source, NewSource and Run, the reconnect loop around
//     sessions (back-off in backoff.go, shared with the completion loop);
//   - session.go: one connection: dial and login, SELECT, IDLE or polling;
//     idlewatch.go: noticing an IDLE the server ends on its own (the
//     session then starts over, see ErrIdleEnded);
//   - scan.go: the search above the cursor, batching, emitting (a message
//     above MaxMessageSize, not fetched, and one the server refuses to
//     return become their task.Rejected stand-ins, made in standin.go,
//     and, in reject.go, so does a task the queue refuses for good,
//     dead-lettered with the reason); message.go: what the scan knows
//     of a message (meta) and the task it becomes (its key);
//     reconcile.go: the periodic whole-mailbox pass (the mailbox
//     selected again) that finishes handled-but-unmoved mail;
//   - fetch.go and refusal.go: fetching metadata and bodies, and when a
//     message the server refuses to return (a body returned empty while
//     its RFC822.SIZE is above 0 included) is given up, on evidence
//     about it over Config.RefusalSpan (its stand-in dead-lettered), or
//     held meanwhile; control.go: the fetch of the first KiB of another
//     message's body that tells a message's refusal, or a connection
//     ended on it, from the server failing as a whole (only a body
//     proves that the server serves: metadata may come from its index
//     while its store fails); poison.go: one it drops the connection on;
//   - inflight.go: what was emitted and not completed yet, copies of it,
//     and the reaper that emits again what never completes;
//   - complete.go: Complete, which only queues; completion_queue.go: the
//     queue and the loop that applies it in batches, retried without
//     limit; completion_apply.go: one batch on the completion connection
//     (find.go: a message found by content once its UID is void;
//     completion_poison.go: of the messages it reads, those the server
//     drops the connection on while it returns another's body (the
//     control of control.go; with no other message to ask for, over
//     Config.RefusalSpan), set aside so the queue gets past them
//     (not dead-lettered: it may be another mail than the one looked
//     for);
//     move.go: MOVE, or a COPY confirmed before the original is deleted,
//     and, after a connection lost once the COPY was sent, the copy
//     looked for before the next one, and the folders moved to, created
//     when missing (ensureFolder);
//     completion_failed.go: the mail of a task that succeeded after its
//     dead letter, taken out of the failed folder);
//   - uids.go: a search answer's UIDs, refused when they are more than
//     the mailbox can hold (a server's answer is not trusted);
//   - watchdog.go: the command timeout and a body fetch's overall
//     deadline (a drip cannot hold the session); status.go and
//     metrics.go: Status, the readiness check and the metrics;
//     config.go: Config.
//
// Module is one mailbox source configured by its own "imap" section
// (config.Provide); an application that keeps its mailbox inside its own
// section builds the source with New or NewSource instead (as
// apps/mailorder does).
//
// memserver is an in-memory server for tests and the demo, imaptest holds
// test helpers around it, and dovecottest runs a real Dovecot per test.
package imap
