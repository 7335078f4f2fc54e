// Package queue defines the port between the task runtime and a queue
// backend, and the errors backends share. Backends live in sub-packages
// (memory, jetstream) and prove they honour the port by passing the
// conformance suite in queuetest.
//
// # Contract
//
// Delivery is at least once. A leased task is invisible to other consumers
// until its lease ends; an expired lease makes it deliverable again with its
// attempt counter increased. Every settlement (Ack, Retry, DeadLetter,
// Release) of a delivery whose lease has already expired, or that was
// already settled, returns ErrLeaseLost and changes nothing. A caller
// treats a settlement that returned an error as not done (if it took
// effect all the same, a timeout say, nothing is lost: the delivery was
// settled; if not, it comes back when its lease ends, which the backend
// may bring forward and then says so in the delivery's LeaseUntil:
// JetStream stops renewing it), except ErrDeadLettered (from Retry or
// Release): the backend dead-lettered the delivery instead. A backend that
// dead-letters on its own outside a settlement says so through
// DeadWatcher.
//
// All methods are safe for concurrent use.
package queue
