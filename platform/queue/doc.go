// Package queue defines the port between the task runtime and a queue
// backend, and the errors backends share. Backends live in sub-packages
// (memory, jetstream) and prove they honour the port by passing the
// conformance suite in queuetest.
//
// # Contract
//
// Delivery is at least once. A leased task is invisible to other consumers
// until its lease ends; an expired lease makes it deliverable again with its
// attempt counter increased. Every settlement (Ack, Retry, DeadLetter) of a
// delivery whose lease has already expired, or that was already settled,
// returns ErrLeaseLost and changes nothing.
//
// All methods are safe for concurrent use.
package queue
