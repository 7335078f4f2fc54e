package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
)

// DefaultMarksBucket is the bucket Marks use by default.
const DefaultMarksBucket = "plba_schedule_marks"

// Marks keep each schedule's last due time in a JetStream key-value
// bucket shared by the hosts, so that a schedule that catches up missed
// due times (source.CatchUpOnce) knows across restarts and hosts what
// already ran. They implement source.Marks. A mark only moves forward:
// two hosts recording different due times keep the later one. A bucket
// the server lost (restarted without its store, or deleted) is set up
// again by the next read or write that finds it gone: its marks are lost
// with it, and LastRun reports none.
type Marks struct {
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig
	kv  jetstream.KeyValue
}

// OpenMarks binds to bucket (DefaultMarksBucket when empty), creating it
// with replicas (1 or 3) when it is missing. It fails with a
// *BucketDiffers (wrapping ErrConfig) when the bucket exists with other
// replicas, as OpenKV does (CheckMarks checks the same without opening it):
// bound as it is, the marks would not survive the loss of a server the
// configuration says they survive, and nobody would know.
func OpenMarks(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Marks, error) {
	m := &Marks{js: js, cfg: marksConfig(bucket, replicas)}
	kv, err := jsapi.Retry(ctx, m.createBucket)
	if err != nil {
		return nil, fmt.Errorf("lease: marks bucket %q: %w", m.cfg.Bucket, err)
	}
	if err := checkBucket(ctx, kv, m.cfg.Bucket, 0, m.cfg.Replicas); err != nil {
		return nil, err
	}
	m.kv = kv
	return m, nil
}

// marksConfig is the configuration of the marks' bucket: bucket
// (DefaultMarksBucket when empty) with replicas (1 when 0).
func marksConfig(bucket string, replicas int) jetstream.KeyValueConfig {
	if bucket == "" {
		bucket = DefaultMarksBucket
	}
	if replicas == 0 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "plba schedules: the last due time each one ran",
		History:     1,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
	}
}

// createBucket creates the marks' bucket, or binds to it when it exists.
func (m *Marks) createBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return createOrBind(ctx, m.js, m.cfg)
}

// restored sets the bucket up again when err says it may be gone
// (bucketGone) and reports whether it did: the failed call is worth one
// more try. A mark has no holder to wait for, unlike a lease.
func (m *Marks) restored(ctx context.Context, err error) bool {
	if !bucketGone(err) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return false
		}
		// A server before 2.10 (Debian's 2.9) does not answer a read of
		// a deleted bucket at all: the request times out. The bucket's
		// lookup tells whether it is gone (with ctx still running).
		if _, lerr := m.js.KeyValue(ctx, m.cfg.Bucket); !errors.Is(lerr, jetstream.ErrBucketNotFound) {
			return false
		}
	}
	_, cerr := m.createBucket(ctx)
	return cerr == nil
}

// LastRun returns schedule's mark, or the zero time when there is none.
func (m *Marks) LastRun(ctx context.Context, schedule string) (time.Time, error) {
	t, _, err := m.get(ctx, schedule)
	return t, err
}

// get returns the mark and its revision (0 when absent).
func (m *Marks) get(ctx context.Context, schedule string) (time.Time, uint64, error) {
	e, err := m.kv.Get(ctx, keyFor("mark", schedule))
	if err != nil && m.restored(ctx, err) {
		e, err = m.kv.Get(ctx, keyFor("mark", schedule))
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, 0, nil
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("lease: mark of %q: %w", schedule, err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("lease: mark of %q: %q: %w", schedule, e.Value(), err)
	}
	return t, e.Revision(), nil
}

// SetLastRun moves schedule's mark to due, unless it is already at or
// after due.
func (m *Marks) SetLastRun(ctx context.Context, schedule string, due time.Time) error {
	val := []byte(due.UTC().Format(time.RFC3339Nano))
	for range 10 {
		cur, rev, err := m.get(ctx, schedule)
		if err != nil {
			return err
		}
		if !cur.IsZero() && !cur.Before(due) {
			return nil
		}
		if rev == 0 {
			_, err = m.kv.Create(ctx, keyFor("mark", schedule), val)
		} else {
			_, err = m.kv.Update(ctx, keyFor("mark", schedule), val, rev)
		}
		if err == nil {
			return nil
		}
		if m.restored(ctx, err) {
			continue // an empty bucket: read it again
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("lease: set mark of %q: %w", schedule, err)
		}
		// Another host moved it in between: read it again.
	}
	return fmt.Errorf("lease: set mark of %q: too many concurrent updates", schedule)
}
