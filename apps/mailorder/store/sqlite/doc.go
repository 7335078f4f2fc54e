// Package sqlite is the mailorder order store on SQLite (modernc.org/sqlite,
// pure Go, no cgo). It implements domain.Store and the reads of
// storetest.Store.
//
// # Schema and migrations
//
// The tables orders, order_lines and outbox are created by migrations
// embedded in the binary (migrations/*.sql) and applied on Open, each in its
// own transaction, recorded in schema_migrations. Orders are unique on
// (message_id, attachment_hash); SaveOrder writes an order, its lines and its
// confirmation into the outbox in one transaction, and does nothing (created
// == false) when the order exists.
//
// # Durability and speed
//
// The database runs in WAL mode with synchronous=NORMAL: a committed order
// survives a crash of the process, but the last transactions before a power
// loss or OS crash may be lost (the database stays consistent). Set
// Config.Synchronous to "FULL" to make every commit durable against power
// loss, at the price of one fsync per commit. Writes go through one dedicated
// connection with prepared statements and BEGIN IMMEDIATE, so writers of this
// process never wait in SQLite's busy handler; readers use their own pool.
// busy_timeout covers other processes sharing the file.
package sqlite
