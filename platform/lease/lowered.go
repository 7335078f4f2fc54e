package lease

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
)

// A holder counts on the bucket's TTL as it last saw it (ttl.go): a
// holder that saw 60 s believes its hold up to 45 s after its last
// renewal, while a bucket lowered meanwhile to 6 s lets its key expire
// (at once when it is older than 6 s), and another host could take the
// lease. So a host that lowers the bucket's TTL (ApplyKV) marks the change
// in the bucket's stream metadata, and no host takes a lease from the
// bucket until the old TTL has passed since the change (youngFor): by
// then every holder counting on the old TTL has renewed into the change,
// and learnt the new one, or let its hold go. The mark is written in two
// steps, each safe on its own:
//
//  1. the new TTL with metaLoweredFrom (the old TTL) and no time: a host
//     that reads the bucket with it waits the old TTL from the time the
//     server reports with what it read, which is after the change;
//  2. then metaLoweredBy: a time of the server's, read after step 1, so
//     no earlier than the change; a host waits until the old TTL after
//     it.
//
// A host that stops between the steps leaves the mark of step 1, safe
// and slower (every lease waits the old TTL) until the next ApplyKV
// completes it. The times are the server's, compared with the time the
// server reports with the bucket's info, as the young-bucket rule does
// (young.go). A TTL lowered by hand (nats kv edit) has no mark: holders
// learn it at their next renewal, and until then could be overtaken.
const (
	metaLoweredFrom = "plba.lease.ttl_lowered_from"
	metaLoweredBy   = "plba.lease.ttl_lowered_by"
)

// ErrServerTooOld is wrapped by the Refused of the *BucketDiffers ApplyKV
// returns for a TTL it cannot lower on a server before 2.10.
var ErrServerTooOld = errors.New("lease: the server is too old")

// lowering is the mark of a lowered TTL: from the old TTL, by a server
// time no earlier than the change (zero: unknown, step 1 only).
type lowering struct {
	from time.Duration
	by   time.Time
}

// loweringIn reads the mark in a bucket's metadata: ok false when there is
// none, an error when it cannot be read.
func loweringIn(meta map[string]string) (lw lowering, ok bool, err error) {
	f, ok := meta[metaLoweredFrom]
	if !ok {
		return lowering{}, false, nil
	}
	if lw.from, err = time.ParseDuration(f); err != nil || lw.from <= 0 {
		return lowering{}, true, fmt.Errorf("metadata %s=%q: not a TTL", metaLoweredFrom, f)
	}
	if b, ok := meta[metaLoweredBy]; ok {
		if lw.by, err = time.Parse(time.RFC3339Nano, b); err != nil {
			return lowering{}, true, fmt.Errorf("metadata %s=%q: %w", metaLoweredBy, b, err)
		}
	}
	return lw, true, nil
}

// left returns how long from serverNow (the server's time with the
// metadata read) no lease may be taken: until the old TTL after the
// change, between 0 and the old TTL.
func (lw lowering) left(serverNow time.Time) time.Duration {
	if lw.by.IsZero() { // the change came before serverNow
		return lw.from
	}
	return max(0, min(lw.by.Add(lw.from).Sub(serverNow), lw.from))
}

// write sets the mark in meta (by omitted when zero).
func (lw lowering) write(meta map[string]string) {
	meta[metaLoweredFrom] = lw.from.String()
	delete(meta, metaLoweredBy)
	if !lw.by.IsZero() {
		meta[metaLoweredBy] = lw.by.UTC().Format(time.RFC3339Nano)
	}
}

// bucketMeta is a copy of a bucket's metadata without the server's own
// ("_nats." keys, which it sets itself).
func bucketMeta(st *jetstream.KeyValueBucketStatus) map[string]string {
	meta := map[string]string{}
	if st.StreamInfo() != nil {
		maps.Copy(meta, st.StreamInfo().Config.Metadata)
	}
	maps.DeleteFunc(meta, func(k, _ string) bool { return strings.HasPrefix(k, "_nats.") })
	return meta
}

// applyKVConfig updates the existing bucket kv (status st) to want. When
// want lowers its TTL, it marks the change (step 1), keeping the wait of
// an earlier mark still running; a mark without its time (step 1, its
// own or one an earlier ApplyKV left) is then completed (step 2).
// Nothing is updated when the bucket is as want says. A setting the
// server refuses is a *BucketDiffers (d, nil when nothing differs) with
// Refused set; so is a lower TTL on a server before 2.10, which could not
// keep the mark (ErrServerTooOld): nothing is changed then.
func applyKVConfig(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, st *jetstream.KeyValueBucketStatus,
	want jetstream.KeyValueConfig, d *BucketDiffers,
) error {
	meta := bucketMeta(st)
	lw, marked, err := loweringIn(meta)
	if err != nil {
		return fmt.Errorf("lease: bucket %q: %w", want.Bucket, err)
	}
	serverNow := st.StreamInfo().TimeStamp
	if have := st.TTL(); have > want.TTL && want.TTL > 0 {
		if serverNow.IsZero() {
			// Servers before 2.10 keep no stream metadata (nor report
			// their time): the change would go unmarked.
			d.Refused = fmt.Errorf("%w: lowering it needs a server that keeps stream metadata (2.10 on) "+
				"to mark the change for the hosts counting on the old TTL", ErrServerTooOld)
			return d
		}
		next := lowering{from: have}
		if marked {
			next.from = max(next.from, lw.left(serverNow))
		}
		next.write(meta)
		lw, marked = next, true
	}
	want.Metadata = meta
	if d != nil { // step 1, or a change that lowers nothing
		if err := update(ctx, js, want, d); err != nil {
			return err
		}
	}
	if !marked || !lw.by.IsZero() {
		return nil
	}
	// Step 2: a time of the server's no earlier than step 1.
	after, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("lease: bucket %q: status after lowering its TTL: %w", want.Bucket, err)
	}
	ast, ok := after.(*jetstream.KeyValueBucketStatus)
	if !ok || ast.StreamInfo() == nil || ast.StreamInfo().TimeStamp.IsZero() {
		return nil // a server before 2.10: the mark stays without its time
	}
	lw.by = ast.StreamInfo().TimeStamp
	lw.write(meta)
	return update(ctx, js, want, nil)
}

// update updates the bucket to want; a refusal is d (when not nil) with
// Refused set.
func update(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig, d *BucketDiffers) error {
	_, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.UpdateKeyValue(ctx, want) })
	if err == nil {
		return nil
	}
	if d != nil {
		d.Refused = err
		return d
	}
	return fmt.Errorf("lease: bucket %q: update: %w", want.Bucket, err)
}
