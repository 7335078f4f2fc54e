package lease

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/plba/plba/internal/jsapi"
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
