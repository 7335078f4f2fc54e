package platform

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	njs "github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/source"
)

type leasesParams struct {
	fx.In

	Backend   queue.Backend
	JetStream jetstream.Config
	Sources   source.Config
	Meter     metric.MeterProvider `optional:"true"`
}

type leasesResult struct {
	fx.Out

	Leases lease.Provider
	Marks  source.Marks
}

// newLeases gives exclusive sources their leases and schedules their
// marks: in JetStream key-value buckets (sources.lease, replicated like the
// streams) when the backend is JetStream, so that one host of the cluster
// runs each; local to the process otherwise. The buckets are checked (or,
// on a host that owns its server, brought to its settings) when the
// backend starts (startJetStream), and opened on first use.
func newLeases(p leasesParams) leasesResult {
	lc := p.Sources.WithDefaults().Lease
	jb, ok := p.Backend.(*jetstream.Backend)
	if !ok {
		return leasesResult{Leases: &lease.Locals{Holder: holderName(lc.Holder)}, Marks: &source.MemoryMarks{}}
	}
	replicas := p.JetStream.WithDefaults().Replicas
	cfg := lease.KVConfig{Bucket: lc.Bucket, TTL: lc.TTL, Replicas: replicas, Holder: lc.Holder}
	if p.Meter != nil {
		cfg.Meter = p.Meter.Meter("github.com/plba/plba/platform/lease")
	}
	kv := &lazyKV{js: jb.JetStream, cfg: cfg, leases: map[string]*lazyLease{}}
	marks := &lazyMarks{js: jb.JetStream, bucket: lc.MarksBucket, replicas: replicas}
	return leasesResult{Leases: kv, Marks: marks}
}

// startJetStream starts the JetStream backend b and then sets up the
// buckets of the sources' leases and the schedules' marks (lc) that
// exist, as the backend does its streams: a host connected to servers it
// does not own checks them against its settings and refuses to start on
// a difference (a configuration problem naming the key, exit 2), rather
// than failing its first lease or mark at run time; a host that owns its
// embedded server applies its settings to them, a TTL changed in its
// configuration as much as its streams' settings, where the bucket's old
// TTL failed every lease at first use and left the host never ready.
// Other hosts may use that server (embedded.listen), holding leases that
// count on the old TTL: a lowered TTL is marked in the bucket, and no
// host takes a lease from it until the old TTL has passed since
// (lease.ApplyKV). The buckets are still opened, and created when
// missing, on first use. A backend that fails here is closed again.
func startJetStream(ctx context.Context, b *jetstream.Backend, lc source.LeaseConfig) error {
	if err := b.Start(ctx); err != nil {
		return err
	}
	set := checkBuckets
	if b.OwnsServer() {
		set = applyBuckets
	}
	err := set(ctx, b.JetStream(), lc, b.Config().Replicas)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	}
	return err
}

// checkBuckets checks the leases' and the marks' buckets, when they
// exist, against lc's TTL and replicas (the streams').
func checkBuckets(ctx context.Context, js njs.JetStream, lc source.LeaseConfig, replicas int) error {
	if err := lease.CheckKV(ctx, js, lease.KVConfig{Bucket: lc.Bucket, TTL: lc.TTL, Replicas: replicas}); err != nil {
		return bucketProblem(err, "leases")
	}
	if err := lease.CheckMarks(ctx, js, lc.MarksBucket, replicas); err != nil {
		return bucketProblem(err, "schedule marks")
	}
	return nil
}

// applyBuckets brings the leases' and the marks' buckets, when they
// exist, to lc's TTL and replicas (the streams'); a lowered TTL delays
// every host's leases by the old TTL (lease.ApplyKV).
func applyBuckets(ctx context.Context, js njs.JetStream, lc source.LeaseConfig, replicas int) error {
	if err := lease.ApplyKV(ctx, js, lease.KVConfig{Bucket: lc.Bucket, TTL: lc.TTL, Replicas: replicas}); err != nil {
		return bucketProblem(err, "leases")
	}
	if err := lease.ApplyMarks(ctx, js, lc.MarksBucket, replicas); err != nil {
		return bucketProblem(err, "schedule marks")
	}
	return nil
}

// bucketProblem turns a bucket found with another setting than this
// host's (lease.BucketDiffers) into the problem of a setting every host
// must agree on (jetstream.ErrSettingsDiffer), naming its key: the
// replicas are the streams' (queue.jetstream.replicas), the TTL is
// sources.lease.ttl. A bucket the server refused to change (Refused) is
// said so. Other errors are returned as they are.
func bucketProblem(err error, what string) error {
	var d *lease.BucketDiffers
	if !errors.As(err, &d) {
		return err
	}
	key := JetStreamSection + ".replicas"
	if d.Setting == lease.SettingTTL {
		key = SourcesSection + ".lease.ttl"
	}
	if d.Refused != nil {
		return fmt.Errorf("%w: %w", config.InvalidAs(jetstream.ErrSettingsDiffer, key,
			"%v, but the %s bucket %q on the server has %v, and the server refused to change it (%v): "+
				"set %v, or change the bucket otherwise (nats kv edit, or delete it: nats kv rm %s)",
			d.Want, what, d.Bucket, d.Have, d.Refused, d.Have, d.Bucket), lease.ErrConfig)
	}
	how := "nats kv edit, or nats stream edit KV_" + d.Bucket
	if d.Lowering() {
		how += "; lowering the ttl by hand: with every host stopped"
	}
	return fmt.Errorf("%w: %w", jetstream.SettingDiffers(key, d.Want, d.Have, fmt.Sprintf("the %s bucket %q", what, d.Bucket),
		how), lease.ErrConfig)
}

type leaseChecksParams struct {
	fx.In

	Sources []source.Source `group:"task.sources"`
	Leases  lease.Provider
}

type leaseChecksResult struct {
	fx.Out

	Checks []health.Check `group:"health.checks,flatten"`
}

// newLeaseChecks gives each exclusive source (a source.Exclusiver saying
// true, as source.Prepare wraps it) a readiness-gating check named
// "lease/source/<name>" that fails while the lease's store fails (the
// lease's last error: the bucket cannot be opened or does not have this
// host's TTL, when it opens it or later, as another host lowered it; a
// create or renewal that failed). A standby passes the
// source's own check (another host runs it); this one tells whether it
// could take over, so a host that can never take the lease is not ready
// instead of waiting for ever as a standby that looks ready.
func newLeaseChecks(p leaseChecksParams) leaseChecksResult {
	var checks []health.Check
	for _, s := range p.Sources {
		if x, ok := s.(source.Exclusiver); !ok || !x.Exclusive() {
			continue
		}
		l := p.Leases.Lease(source.LeaseName(s.Name()))
		checks = append(checks, health.Check{Name: "lease/" + l.Name(), Gating: true,
			Func: func(context.Context) error {
				if st := l.Status(); st.LastError != "" {
					return fmt.Errorf("lease %q: %s", l.Name(), st.LastError)
				}
				return nil
			}})
	}
	return leaseChecksResult{Checks: checks}
}

// holderName is h, or "<hostname>/<pid>" when h is empty.
func holderName(h string) string {
	if h != "" {
		return h
	}
	return lease.KVConfig{}.DefaultHolder()
}

// lazyKV is a lease.Provider whose bucket is opened at the first Acquire
// (the backend's JetStream context exists only after its start); Acquire
// tries a failed open again with back-off until its ctx ends.
type lazyKV struct {
	js  func() njs.JetStream
	cfg lease.KVConfig

	mu     sync.Mutex
	kv     *lease.KV
	leases map[string]*lazyLease
}

func (k *lazyKV) Lease(name string) lease.Lease {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.leases[name]
	if !ok {
		l = &lazyLease{k: k, name: name}
		k.leases[name] = l
	}
	return l
}

// open returns the bucket, opening it when it is not yet.
func (k *lazyKV) open(ctx context.Context) (*lease.KV, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kv != nil {
		return k.kv, nil
	}
	js := k.js()
	if js == nil {
		return nil, fmt.Errorf("lease: the JetStream backend has not started")
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := lease.OpenKV(octx, js, k.cfg)
	if err != nil {
		return nil, fmt.Errorf("sources.lease: %w", bucketProblem(err, "leases"))
	}
	k.kv = kv
	return kv, nil
}

type lazyLease struct {
	k    *lazyKV
	name string

	mu   sync.Mutex
	l    lease.Lease
	last error
}

func (l *lazyLease) Name() string { return l.name }

// Acquire opens the bucket when it is not yet, retrying a failed open
// (the backend not started, NATS not reachable) with back-off until ctx
// ends, as lease.Lease promises: Status shows the last error meanwhile.
func (l *lazyLease) Acquire(ctx context.Context) (lease.Hold, error) {
	var retry *backoff.ExponentialBackOff
	for {
		inner, err := l.inner(ctx)
		if err == nil {
			return inner.Acquire(ctx)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if retry == nil {
			retry = openRetry(l.k.cfg.TTL)
		}
		if err := sleep.Ctx(ctx, retry.NextBackOff()); err != nil {
			return nil, err
		}
	}
}

// openRetry is the back-off between failed opens of the lease bucket:
// 100ms doubling up to a third of the lease's TTL (how often the KV lease
// retries its store), spread by ±20%.
func openRetry(ttl time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         max(ttl/3, 100*time.Millisecond),
	}
	b.Reset()
	return b
}

// inner returns the KV lease, opening the bucket when it is not yet
// (without holding l.mu, so Status answers meanwhile).
func (l *lazyLease) inner(ctx context.Context) (lease.Lease, error) {
	l.mu.Lock()
	inner := l.l
	l.mu.Unlock()
	if inner != nil {
		return inner, nil
	}
	kv, err := l.k.open(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.last = err
		return nil, err
	}
	l.l, l.last = kv.Lease(l.name), nil
	return l.l, nil
}

func (l *lazyLease) Status() lease.Status {
	l.mu.Lock()
	inner, last := l.l, l.last
	l.mu.Unlock()
	if inner != nil {
		return inner.Status()
	}
	st := lease.Status{Name: l.name}
	if last != nil {
		st.LastError = last.Error()
	}
	return st
}

// lazyMarks are lease.Marks opened at first use.
type lazyMarks struct {
	js       func() njs.JetStream
	bucket   string
	replicas int

	mu sync.Mutex
	m  *lease.Marks
}

var _ source.Marks = (*lazyMarks)(nil)

func (m *lazyMarks) open(ctx context.Context) (*lease.Marks, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m != nil {
		return m.m, nil
	}
	js := m.js()
	if js == nil {
		return nil, fmt.Errorf("schedule marks: the JetStream backend has not started")
	}
	mk, err := lease.OpenMarks(ctx, js, m.bucket, m.replicas)
	if err != nil {
		return nil, fmt.Errorf("sources.lease.marks_bucket: %w", bucketProblem(err, "schedule marks"))
	}
	m.m = mk
	return mk, nil
}

func (m *lazyMarks) LastRun(ctx context.Context, schedule string) (time.Time, error) {
	mk, err := m.open(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return mk.LastRun(ctx, schedule)
}

func (m *lazyMarks) SetLastRun(ctx context.Context, schedule string, due time.Time) error {
	mk, err := m.open(ctx)
	if err != nil {
		return err
	}
	return mk.SetLastRun(ctx, schedule, due)
}
