package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/plba/plba/internal/sleep"
)

// A KV lease (kvLease) attempts to take its key: Acquire, each attempt
// (try), a key created under a TTL unknown let go (letGo; one whose
// delete failed deleted again when an attempt finds it, deleteLeft), and
// a key created taken as a hold (took, kvhold.go renewing it).

// record is a lease key's value.
type record struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
	Token  string    `json:"token"` // one per attempt: the KV's nonce, a dot, random hex
}

type kvLease struct {
	k    *KV
	name string
	key  string

	mu        sync.Mutex
	st        Status
	sawHolder bool // another holder's record seen since this host last held it
	// left is a key this host created and let go whose delete failed,
	// until it is found gone: Status shows it meanwhile (leftKey).
	left leftKey
}

// leftKey is the revision of a key a lease let go without deleting it,
// and why (0: none).
type leftKey struct {
	rev uint64
	err string
}

func (l *kvLease) Name() string { return l.name }

func (l *kvLease) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.st
	s.Name = l.name
	return s
}

// Acquire tries to create the key at once and then every third of the TTL
// it counts on (ttl.go) until it succeeds or ctx ends. From a bucket
// younger than the TTL, or whose TTL was lowered less than the old TTL
// ago, it returns once that has passed (see holdWhenOld).
func (l *kvLease) Acquire(ctx context.Context) (Hold, error) {
	for {
		h, err := l.try(ctx)
		if h != nil {
			return h, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		l.setErr(err)
		if err := sleep.Ctx(ctx, l.k.ttl()/3); err != nil {
			return nil, err
		}
	}
}

// try makes one attempt: the hold, or (nil, nil) when another host holds
// the lease, or the store's error. Once it created the key, it asks the
// bucket's TTL: the hold counts on a read that started after the create
// was answered (a renewal on one started after the renewal was sent,
// ttl.go), which shows too a lowering of the TTL before the create; an
// attempt that finds the lease held takes the TTL for its Status from a
// read of the KV's that started within the TTL. A key created under a
// TTL it cannot read is let go.
func (l *kvLease) try(ctx context.Context) (*kvHold, error) {
	token := l.k.nonce + "." + newToken()
	sent := time.Now()
	rec := record{Holder: l.k.cfg.Holder, Since: sent.UTC().Truncate(time.Millisecond), Token: token}
	val, _ := json.Marshal(rec)
	rctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
	rev, err := l.k.kv.Create(rctx, l.key, val)
	cancel()
	if err == nil {
		l.setLeft(leftKey{}) // the key let go is gone
		// A read started once the create was answered: one started
		// after it was sent may have been answered before it reached
		// the server, and miss a lowering of the TTL (marked) that came
		// between (youngFor).
		answered := time.Now()
		sctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
		st, err := l.k.statusSince(sctx, answered)
		cancel()
		if err != nil {
			return nil, l.letGo(ctx, rev, err)
		}
		return l.took(ctx, rec, val, rev, sent, st)
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("lease %q: create: %w", l.name, l.k.restoreBucket(ctx, err))
	}
	gctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
	e, err := l.k.kv.Get(gctx, l.key)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound): // expired in between: the next attempt
		l.setLeft(leftKey{})
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("lease %q: get: %w", l.name, err)
	}
	left, gone := l.deleteLeft(ctx, e.Revision())
	if gone {
		return nil, nil // the key this host let go: the next attempt
	}
	var other record
	if json.Unmarshal(e.Value(), &other) != nil {
		other.Holder = "(unreadable)"
	}
	// The bucket's TTL as last seen is what Status says of it, and what
	// the attempts are paced by; nothing counts on it. A read that started
	// within the TTL does, shared by the KV's attempts and holds.
	sctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
	_, _ = l.k.statusSince(sctx, time.Now().Add(-l.k.cfg.TTL))
	cancel()
	l.mu.Lock()
	if l.st.Held { // held by another caller in this process: its status stands
		l.mu.Unlock()
		return nil, nil
	}
	if !strings.HasPrefix(other.Token, l.k.nonce+".") {
		// Not a record of this host's own (a hold it lost, whose key
		// outlives it by the margin, or an attempt whose reply was lost):
		// taking the lease after it is a hand-over.
		l.sawHolder = true
	}
	l.st.Holder, l.st.Since, l.st.Held, l.st.Revision, l.st.LastError = other.Holder, other.Since, false, e.Revision(), l.k.ttlProblem()
	if left != "" {
		l.st.LastError = strings.TrimSuffix(left+"; "+l.st.LastError, "; ")
	}
	l.mu.Unlock()
	return nil, nil
}

// deleteLeft deletes again the key found at revision rev when it is the
// one this host let go without deleting it (letGo): gone reports that it
// is deleted now, else left says why it is still there (the first
// delete's error and this one's), "" when rev is not that key (it is
// gone: expired, or deleted by another).
func (l *kvLease) deleteLeft(ctx context.Context, rev uint64) (left string, gone bool) {
	l.mu.Lock()
	lk := l.left
	l.mu.Unlock()
	if lk.rev == 0 {
		return "", false
	}
	if lk.rev != rev {
		l.setLeft(leftKey{})
		return "", false
	}
	dctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
	derr := l.k.kv.Delete(dctx, l.key, jetstream.LastRevision(rev))
	cancel()
	if derr == nil {
		l.setLeft(leftKey{})
		return "", true
	}
	return fmt.Sprintf("lease %q: its key, created by this host and let go at revision %d, is not deleted: nobody holds the lease until it is, or expires after the bucket's TTL (%s; deleted again: %v)",
		l.name, rev, lk.err, derr), false
}

// setLeft records the key this host let go without deleting it (zero:
// none, or found gone).
func (l *kvLease) setLeft(lk leftKey) {
	l.mu.Lock()
	l.left = lk
	l.mu.Unlock()
}

// letGo deletes the key this host created at revision rev, when the
// bucket's TTL could not be read after (err): the bucket's may be shorter
// than the host's, and a hold counting on the host's could outlive its
// key. A delete that fails leaves the key to expire; nobody holds it
// meanwhile. The Status of the attempts that find it says so (its last
// error) until it is gone, and each deletes it again (deleteLeft).
func (l *kvLease) letGo(ctx context.Context, rev uint64, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.k.ttl()/3)
	defer cancel()
	err = fmt.Errorf("lease %q: created, but let go: the bucket's TTL is unknown: %w", l.name, err)
	if derr := l.k.kv.Delete(dctx, l.key, jetstream.LastRevision(rev)); derr != nil {
		err = fmt.Errorf("%w (delete: %w: the key expires after the bucket's TTL)", err, derr)
		l.setLeft(leftKey{rev: rev, err: err.Error()})
	}
	return err
}

// took starts the hold on the key this host created at revision rev (by
// a request sent at sent), counting on the TTL of st (the bucket's status
// read after the create) and the host's, and returns it once the bucket
// is the TTL old and its TTL was not lowered within the old TTL: at once
// but for a bucket set up again after the server lost it, or new, or
// lowered (youngFor, from st: no second read).
func (l *kvLease) took(ctx context.Context, rec record, val []byte, rev uint64, sent time.Time, st jetstream.KeyValueStatus) (*kvHold, error) {
	h := startHold(l, val, rev, sent, countOn(l.k.cfg.TTL, st.TTL()))
	wait, err := l.k.youngFor(ctx, l.key, st)
	if err != nil {
		err = fmt.Errorf("lease %q: age of its bucket unknown, taken as new (and lowered now, when it was marked lowered): %w", l.name, err)
	}
	if wait > 0 {
		if werr := l.holdWhenOld(ctx, h, rec, wait); werr != nil {
			return nil, errors.Join(werr, err)
		}
	}
	h.mu.Lock()
	if h.isLost { // else lose's Status comes after this one (it sets isLost first)
		h.mu.Unlock()
		return nil, fmt.Errorf("lease %q: lost as it was taken", l.name)
	}
	l.mu.Lock()
	handover := l.sawHolder
	l.sawHolder = false
	if handover {
		l.st.HandOvers++
	}
	l.st.Holder, l.st.Since, l.st.Held, l.st.Revision, l.st.LastError = rec.Holder, rec.Since, true, h.rev, l.k.ttlProblem()
	l.mu.Unlock()
	h.mu.Unlock()
	if handover {
		l.k.handovers.Add(ctx, 1, metric.WithAttributes(attribute.String("lease", l.name)))
	}
	return h, nil
}

func (l *kvLease) setErr(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	l.st.LastError = err.Error()
	l.mu.Unlock()
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
