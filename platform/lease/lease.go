// Package lease gives one host of a cluster at a time the right to do
// something: run a source that must not run twice (an IMAP mailbox, a
// schedule). A Lease is acquired, held while its holder renews it, and
// handed over when the holder releases it or dies.
//
// Two implementations:
//
//   - KV: a JetStream key-value bucket whose TTL is the lease's. The holder
//     creates the lease's key (Create: only if absent) and renews it with
//     Update on the revision it holds (optimistic concurrency), every
//     quarter of the TTL (brought forward onto a grid of a sixteenth of
//     it, so that the renewals of many leases come together). A holder
//     that dies stops renewing; the key expires after the TTL and another
//     host's next attempt (every third of the TTL) takes it: the default
//     TTL of 6 s hands over within 8 s. A
//     holder that cannot renew (cut off from NATS) declares its hold lost
//     a quarter of the TTL before the key can expire, measured from when
//     it sent its last successful renewal, so its work stops before anyone
//     else can hold the lease. Release deletes the key on the held
//     revision: the next host takes over at its next attempt. A lease is
//     held only once its bucket is the TTL old, measured in the server's
//     time (the bucket's creation against the time the server reports):
//     a host that took it from a younger bucket holds the key, renewing
//     it, and its Acquire returns when the bucket is the TTL old (Status
//     says from when). A bucket the server lost (restarted without its
//     store, or deleted) is set up again by the next attempt that finds
//     it gone, or by a host that starts (OpenKV), and a holder learns of
//     the new bucket at its next renewal; a holder cut off from the
//     server may still believe it holds a lease on the lost bucket, until
//     three quarters of the TTL after its last renewal, which came before
//     the loss, so before the new bucket is the TTL old. The cost: the
//     first lease from a new bucket (a new deployment's first start)
//     comes a TTL after the bucket was created. The TTL a holder counts
//     on is its own or, when the bucket's is shorter, the bucket's, asked
//     after it created the key and after each renewal (a renewal whose
//     look fails does not extend the hold, a key created under a TTL
//     unknown is let go, deleted: one whose delete failed stays in the
//     lease's Status.LastError, and is deleted again by each attempt
//     that finds it, until it is gone; the leases of a KV share a look that started
//     after each one's create was answered or renewal was sent, never
//     one from before it): the bucket's TTL can be lowered under a running host (ApplyKV
//     on a host that owns the server others use), and a holder counting
//     on the old one would believe its hold after its key expired. A
//     bucket TTL other than the host's stays in the lease's
//     Status.LastError (as the latest read saw it, not the last
//     answered). ApplyKV marks a lower TTL in the bucket's metadata with
//     the time of the change, and no host takes a lease from the bucket
//     until the old TTL has passed since (Status.HeldFrom says when), so
//     that every holder counting on the old TTL has renewed into the
//     change, learning the new one, or let go. A TTL lowered by hand (nats
//     kv edit) leaves no mark: lower it with the hosts stopped, or through
//     ApplyKV.
//   - Local: a lease within one process, for the memory backend and a
//     single host. It costs a mutex.
//
// Marks keep each schedule's last due time in a key-value bucket shared
// by the hosts (source.Marks), for schedules that catch up missed runs.
//
// Every host must agree on the leases' TTL and on both buckets' replicas:
// OpenKV and OpenMarks refuse a bucket that has others, and CheckKV and
// CheckMarks check one that exists without opening it, so that a host
// can refuse to start on a difference (*BucketDiffers, ErrConfig).
//
// The promise "never two holders" rests on the holder's work stopping
// within the margin once its hold is lost (source.Exclusive cancels the
// source's context at once) and on the NATS servers' clocks agreeing
// within that margin (a key's age, and a bucket's, are measured by the
// servers).
package lease

import (
	"context"
	"time"
)

// Lease is the right to do something on one host of the cluster at a
// time. A Lease is safe for concurrent use.
type Lease interface {
	// Name is the lease's name: the same on every host that contends
	// for it.
	Name() string
	// Acquire blocks until this host holds the lease, and returns the
	// hold; it returns ctx.Err() when ctx ends first. Errors of the store
	// while waiting are retried (Status shows the last one).
	Acquire(ctx context.Context) (Hold, error)
	// Status is the lease as this host last saw it.
	Status() Status
}

// Hold is a held lease.
type Hold interface {
	// Lost is closed when the hold ends without Release: it could not be
	// renewed in time, or the lease was found taken. The holder must stop
	// its work at once: Lost closes a margin before the lease can expire.
	Lost() <-chan struct{}
	// Release stops renewing and frees the lease so that another host can
	// take it at once. It is idempotent; after Lost it only stops.
	Release(ctx context.Context) error
}

// Status is a lease as one host sees it.
type Status struct {
	// Name is the lease's name.
	Name string `json:"name"`
	// Holder is who holds the lease (a host's identity), empty when
	// nobody does as far as this host knows.
	Holder string `json:"holder,omitempty"`
	// Since is when Holder took the lease.
	Since time.Time `json:"since,omitzero"`
	// HeldFrom is when this host will hold the lease it took from a
	// bucket younger than the TTL (KV leases: a bucket new, or set up
	// again after the server lost it) or whose TTL was lowered less than
	// the old TTL ago (ApplyKV); zero otherwise. Holder names this host
	// meanwhile, and Held is false.
	HeldFrom time.Time `json:"held_from,omitzero"`
	// Held says whether this host is the holder.
	Held bool `json:"held"`
	// Revision is the key's revision this host last saw (KV leases).
	Revision uint64 `json:"revision,omitempty"`
	// HandOvers counts the times this host took the lease after seeing
	// another holder have it.
	HandOvers int64 `json:"hand_overs"`
	// LastError is the last error of the store (KV leases), cleared by
	// the next success; or, while the bucket's TTL is not this host's,
	// that difference (the host counts on the shorter of the two); or,
	// while a key this host created and let go (the bucket's TTL
	// unknown) is still there, its delete's failure: nobody holds the
	// lease until it is deleted or expires.
	LastError string `json:"last_error,omitempty"`
}

// Provider gives the lease for a name: the same lease for the same name.
// KV and Locals implement it, so a host chooses one by its backend and
// hands it to whatever needs leases (source.Exclusive).
type Provider interface {
	Lease(name string) Lease
}
