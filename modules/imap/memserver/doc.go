// Package memserver runs an in-process IMAP server backed by memory
// (go-imap's imapmemserver) on a TCP listener. It serves tests (through
// modules/imap/imaptest) and demo hosts that want a mailbox without an
// external mail server: start it, append sample messages, point an IMAP
// source at its address.
//
// The server speaks plain IMAP unless Options.TLSConfig is set (then it
// listens with implicit TLS). Authentication without TLS is allowed, which
// is only sane on loopback; Start refuses a non-loopback listen address
// without TLS unless Options.AllowInsecure is set.
package memserver
