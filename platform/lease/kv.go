package lease

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/plba/plba/internal/jsapi"
	"github.com/plba/plba/internal/sleep"
)

// Defaults of KVConfig.
const (
	DefaultBucket = "plba_leases"
	// DefaultTTL hands a dead holder's lease over within DefaultTTL plus
	// a third of it: 8 s.
	DefaultTTL = 6 * time.Second
)

// ErrConfig is wrapped by the errors of a bad KVConfig or a bucket that
// does not match it.
var ErrConfig = errors.New("lease: bad configuration")

// KVConfig configures leases kept in a JetStream key-value bucket.
type KVConfig struct {
	// Bucket is the key-value bucket (created when missing). Default
	// DefaultBucket. Every host contending for a lease uses the same.
	Bucket string
	// TTL is how long a lease outlives its holder's last renewal: the
	// bucket's TTL. Default DefaultTTL; at least one second. Every host
	// must agree: OpenKV fails when the bucket has another TTL. A bucket
	// whose TTL is lowered under an open KV is counted on (see the
	// package doc).
	TTL time.Duration
	// Replicas of the bucket: 3 on a three-node cluster, so that a lease
	// survives the loss of a server. Default 1. OpenKV fails when the
	// bucket has other replicas.
	Replicas int
	// Holder is this host's identity in the leases' Status. Default
	// "<hostname>/<pid>".
	Holder string
	// Meter makes the hand-over counter plba.lease.handovers. Default the
	// global meter provider's.
	Meter metric.Meter
}

// DefaultHolder is the default Holder: "<hostname>/<pid>".
func (KVConfig) DefaultHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

func (c KVConfig) withDefaults() KVConfig {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Holder == "" {
		c.Holder = c.DefaultHolder()
	}
	if c.Meter == nil {
		c.Meter = otel.GetMeterProvider().Meter("github.com/plba/plba/platform/lease")
	}
	return c
}

// KV keeps leases in a JetStream key-value bucket.
type KV struct {
	cfg       KVConfig
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	handovers metric.Int64Counter
	// nonce starts the token of every record this KV writes, so that it
	// knows its own records (a hold it lost, an attempt whose reply it
	// never got) from another holder's, whatever the Holder names say.
	nonce string
	// seenTTL is the bucket's TTL as last seen (nanoseconds): see ttl.go.
	seenTTL atomic.Int64
	// reads are the status reads its leases share, and epoch the origin
	// of the grid their renewals are due on (ttl.go).
	reads statusReads
	epoch time.Time

	mu     sync.Mutex
	leases map[string]*kvLease
}

// OpenKV binds to the leases' bucket, creating it with cfg's TTL and
// replicas when it is missing. It fails with a *BucketDiffers (wrapping
// ErrConfig) when the bucket exists with another TTL: hosts that disagree
// on the TTL could both believe they hold a lease; and when it has other
// replicas, which binding to it as it is would leave unsaid (CheckKV
// checks the same without opening it). Leases from a bucket it creates
// are held only a TTL after (see the package doc).
func OpenKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (*KV, error) {
	cfg = cfg.withDefaults()
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("%w: ttl %v is under one second", ErrConfig, cfg.TTL)
	}
	if cfg.Replicas != 1 && cfg.Replicas != 3 {
		return nil, fmt.Errorf("%w: replicas %d: want 1 or 3", ErrConfig, cfg.Replicas)
	}
	kv, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return createBucket(ctx, js, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %q: %w", cfg.Bucket, err)
	}
	if err := checkBucket(ctx, kv, cfg.Bucket, cfg.TTL, cfg.Replicas); err != nil {
		return nil, err
	}
	c, err := cfg.Meter.Int64Counter("plba.lease.handovers", metric.WithUnit("{handover}"),
		metric.WithDescription("times this host took a lease after seeing another holder have it"))
	if err != nil {
		return nil, fmt.Errorf("lease: metric: %w", err)
	}
	k := &KV{cfg: cfg, js: js, kv: kv, handovers: c, nonce: newToken(), epoch: time.Now()}
	k.seenTTL.Store(int64(cfg.TTL)) // checkBucket found it so
	return k, nil
}

// createBucket creates the leases' bucket, or binds to it when it exists.
func createBucket(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (jetstream.KeyValue, error) {
	return createOrBind(ctx, js, cfg.bucketConfig())
}

// bucketConfig is the configuration of the leases' bucket c (defaults
// applied) describes.
func (c KVConfig) bucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.Bucket,
		Description: "plba leases: one holder per key",
		History:     1,
		TTL:         c.TTL,
		Replicas:    c.Replicas,
		Storage:     jetstream.FileStorage,
	}
}

// createOrBind creates the bucket cfg describes, or binds to it when it
// exists (as another host created it, perhaps with other settings).
func createOrBind(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, err
}

// bucketGone reports whether err may mean that the bucket's stream is
// gone (the server lost its store, or the bucket was deleted). The same
// errors come while a cluster elects the stream's leader: restoreBucket
// then finds the bucket there and changes nothing.
func bucketGone(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// restoreBucket sets the bucket up again after an attempt found it gone
// (err, see bucketGone). A lease is taken from the new bucket only once it
// is the TTL old (see youngFor): a hold on the lost bucket ends at the
// latest the TTL after its last renewal, which came before the loss, so
// no host takes a lease from the new bucket while the holder of one on the
// old bucket still believes it holds it. It returns err, with what it did.
func (k *KV) restoreBucket(ctx context.Context, err error) error {
	if !bucketGone(err) {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, k.ttl()/3)
	defer cancel()
	if _, cerr := createBucket(cctx, k.js, k.cfg); cerr != nil {
		return fmt.Errorf("%w (bucket %q gone? set it up again: %w)", err, k.cfg.Bucket, cerr)
	}
	return fmt.Errorf("%w (bucket %q was gone, or its stream had no leader: set up again, or found there)", err, k.cfg.Bucket)
}

// Lease returns the lease named name (the same one for the same name),
// kept under a key derived from it.
func (k *KV) Lease(name string) Lease {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.leases == nil {
		k.leases = map[string]*kvLease{}
	}
	l, ok := k.leases[name]
	if !ok {
		l = &kvLease{k: k, name: name, key: keyFor("lease", name)}
		k.leases[name] = l
	}
	return l
}

var validKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// keyFor returns prefix.name as a key when name is valid in one, else
// prefix-b64.<name in base64>.
func keyFor(prefix, name string) string {
	if validKey.MatchString(name) {
		return prefix + "." + name
	}
	return prefix + "-b64." + base64.RawURLEncoding.EncodeToString([]byte(name))
}

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

	mu         sync.Mutex
	st         Status
	sawHolder  bool // another holder's record seen since this host last held it
	acquireErr error
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
// was sent, as a renewal does on one after the renewal (ttl.go); an
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
		sctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
		st, err := l.k.statusSince(sctx, sent)
		cancel()
		if err != nil {
			return nil, l.letGo(ctx, rev, err)
		}
		return l.took(ctx, rec, val, rev, sent, countOn(l.k.cfg.TTL, st.TTL()), loweredFrom(st))
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("lease %q: create: %w", l.name, l.k.restoreBucket(ctx, err))
	}
	gctx, cancel := context.WithTimeout(ctx, l.k.ttl()/3)
	e, err := l.k.kv.Get(gctx, l.key)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound): // expired in between: the next attempt
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("lease %q: get: %w", l.name, err)
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
	l.mu.Unlock()
	return nil, nil
}

// letGo deletes the key this host created at revision rev, when the
// bucket's TTL could not be read after (err): the bucket's may be shorter
// than the host's, and a hold counting on the host's could outlive its
// key. A delete that fails leaves the key to expire; nobody holds it
// meanwhile.
func (l *kvLease) letGo(ctx context.Context, rev uint64, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.k.ttl()/3)
	defer cancel()
	err = fmt.Errorf("lease %q: created, but let go: the bucket's TTL is unknown: %w", l.name, err)
	if derr := l.k.kv.Delete(dctx, l.key, jetstream.LastRevision(rev)); derr != nil {
		err = fmt.Errorf("%w (delete: %w: the key expires after the bucket's TTL)", err, derr)
	}
	return err
}

// took starts the hold, counting on ttl, on the key this host created at
// revision rev (by a request sent at sent) and returns it once the bucket
// is the TTL old and its TTL was not lowered within the old TTL: at once
// but for a bucket set up again after the server lost it, or new, or
// lowered (youngFor; lowered is the old TTL of a lowering the look after
// the create saw marked, 0 for none).
func (l *kvLease) took(ctx context.Context, rec record, val []byte, rev uint64, sent time.Time, ttl, lowered time.Duration) (*kvHold, error) {
	h := startHold(l, val, rev, sent, ttl)
	wait, err := l.k.youngFor(ctx, l.key, lowered)
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
