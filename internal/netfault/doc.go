// Package netfault is a TCP proxy for tests that can partition a client
// from its server: while frozen it forwards nothing in either direction
// and keeps the connections open, as a network partition does (no error,
// no close: requests just get no answer). Thawed, it forwards again, first
// what it held. A close by either end is passed on to the other (while
// thawed), as on a working network.
//
// platform/lease partitions a lease's holder from NATS with it, and
// cmd/host a host from the NATS server its mailbox's lease lives on.
package netfault
