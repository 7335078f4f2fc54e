// Package mailorder is the pilot application: order mails arrive in an IMAP
// mailbox, every valid order attachment becomes a stored order with a
// confirmation in the outbox, and every mail that cannot be an order goes to
// the dead letter and the mailbox's failed folder with a human-readable
// reason.
//
// The business lives in the domain package (pure Go); the stores in
// store/sqlite and store/postgres; this package wires them into the host:
// Module contributes the IMAP source (modules/imap), the route of Kind, the
// store and its health check, and the admin endpoint StatusPath. Register
// it in cmd/host and list it in host.apps:
//
//	host:
//	  apps: [mailorder]
//	mailorder:
//	  mailbox: {host: imap.example.com, username: orders, password: ...}
//
// With mailorder.demo.enabled the application starts an embedded IMAP server
// seeded with sample mails (package sample) and points the source at it:
// see configs/demo.yaml.
package mailorder
