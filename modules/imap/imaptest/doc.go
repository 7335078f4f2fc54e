// Package imaptest helps test code that talks IMAP: NewServer starts an
// in-process memory-backed server (memserver) on a loopback port for the
// duration of a test, NewProxy puts a TCP proxy in front of it that can cut
// connections on command (fault injection), and Message builds small RFC
// 5322 messages.
package imaptest
