// Package postgres is the mailorder order store on PostgreSQL (pgx v5). It
// implements domain.Store and the reads of storetest.Store, and passes the
// same conformance suite as the SQLite store.
//
// # Schema and migrations
//
// The tables orders, order_lines and outbox live in Config.Schema (created
// when missing; "public" by default) and are created by migrations embedded
// in the binary (migrations/*.sql), applied on Open under a transaction-level
// advisory lock, so several hosts starting at once migrate once. Applied
// versions are recorded in schema_migrations. Orders are unique on
// (message_id, attachment_hash); SaveOrder writes an order, its lines and
// its confirmation into the outbox in one transaction, and does nothing
// (created == false) when the order exists, also when two hosts race.
//
// # Connections
//
// The store keeps up to Config.MaxConns connections of its own (a small pool
// on pgx.Conn); every statement runs with the caller's context, and a
// connection a cancelled statement left in doubt is closed, not reused.
//
// # Hosts that vanish mid-transaction
//
// Several hosts share one database. A host that freezes or is cut off
// inside SaveOrder's transaction leaves its session idle in a transaction
// that holds the order's unique key (message_id, attachment_hash): the
// redelivery of the same mail on another host waits for that key. The
// server would end such a session only when TCP keepalive finds the host
// gone (hours by default), so every connection of the store sets
// idle_in_transaction_session_timeout (Config.IdleInTransactionTimeout,
// default 10s): the server rolls the lost host's transaction back after
// it, and the waiting host stores the order.
package postgres
