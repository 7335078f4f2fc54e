package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
	"github.com/plba/plba/platform/queue"
)

// overridesBucket is the name of the KV bucket that keeps the pools'
// run-time overrides, after the stream prefix: <prefix>_OVERRIDES.
func (n names) overridesBucket() string { return n.prefix + "_OVERRIDES" }

// Overrides returns a queue.OverrideStore kept in the JetStream KV
// bucket <prefix>_OVERRIDES (one key per queue, the queue name encoded
// like a stream token), with the backend's storage and replicas: a
// paused or resized pool stays so after a restart of any replica. The
// bucket is created on first use (the backend must be started). A host
// connected to servers it does not own refuses to start when the bucket
// exists with other replicas (ErrSettingsDiffer, agree.go).
func (b *Backend) Overrides() queue.OverrideStore { return &kvOverrides{b: b} }

type kvOverrides struct{ b *Backend }

// agreeOverrides checks the overrides' bucket, when it exists, against
// this host's replicas and storage, as the streams are (agreeStream):
// first use binds to it as it is (and Durable answers from the
// configured storage). The backend checks it when it starts.
func (b *Backend) agreeOverrides(ctx context.Context) error {
	want := jetstream.StreamConfig{Name: "KV_" + b.names.overridesBucket(), Replicas: b.cfg.Replicas, Storage: b.storage()}
	return b.agreeStream(ctx, want, streamKeys{})
}

func (s *kvOverrides) Durable() bool { return s.b.cfg.Storage != StorageMemory }

func (s *kvOverrides) kv(ctx context.Context) (jetstream.KeyValue, error) {
	if err := s.b.usable(); err != nil {
		return nil, err
	}
	name := s.b.names.overridesBucket()
	kv, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return s.b.js.KeyValue(ctx, name) })
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
			kv, err := s.b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: name, Description: "plba pool overrides", History: 1,
				Storage: s.b.storage(), Replicas: s.b.cfg.Replicas,
			})
			if errors.Is(err, jetstream.ErrBucketExists) {
				// Another host made it a moment ago: bound as it is, not
				// updated to this host's replicas under it.
				return s.b.js.KeyValue(ctx, name)
			}
			return kv, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: key-value bucket %q: %w", name, err)
	}
	return kv, nil
}

// Load returns every saved override.
func (s *kvOverrides) Load(ctx context.Context) (map[string]queue.PoolOverride, error) {
	kv, err := s.kv(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]queue.PoolOverride{}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream: list pool overrides: %w", err)
	}
	for k := range keys.Keys() {
		q, ok := decodeToken(k)
		if !ok {
			continue
		}
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jetstream: read pool override %q: %w", q, err)
		}
		var o queue.PoolOverride
		if err := json.Unmarshal(e.Value(), &o); err != nil {
			return nil, fmt.Errorf("jetstream: pool override %q: %w", q, err)
		}
		out[q] = o
	}
	return out, nil
}

// Save keeps o for queue q; a zero o deletes the key. When the put (or
// delete) was sent but its answer did not come, the error wraps
// queue.ErrOutcomeUnknown: the bucket may hold the change.
func (s *kvOverrides) Save(ctx context.Context, q string, o queue.PoolOverride) error {
	kv, err := s.kv(ctx)
	if err != nil {
		return err
	}
	key := encodeToken(q)
	if o.IsZero() {
		if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("jetstream: delete pool override %q: %w", q, unanswered(err))
		}
		return nil
	}
	v, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, v); err != nil {
		return fmt.Errorf("jetstream: save pool override %q: %w", q, unanswered(err))
	}
	return nil
}

// unanswered wraps queue.ErrOutcomeUnknown around err, the error of a
// request sent to the server, when the answer did not come (a timeout,
// the context ending, the connection lost): the server may have done
// it. Other errors are returned as they are.
func unanswered(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrDisconnected) {
		return fmt.Errorf("%w (%w)", err, queue.ErrOutcomeUnknown)
	}
	return err
}
