package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
	"github.com/plba/plba/platform/config"
)

// ErrSettingsDiffer is wrapped by the error of a set-up that finds a
// stream or consumer on the server made with other settings than this
// host's for a key every host must agree on (see agreeStream). The error
// is also a config.Problem naming the key, so the host exits 2.
var ErrSettingsDiffer = errors.New("jetstream: settings differ from the server's")

// errReplicasUnsupported is the server's answer to a stream of more than
// one replica on a server that is not part of a cluster.
const errReplicasUnsupported = 10074

// Every host on one stream prefix must agree on the settings stored in
// the streams and consumers they share: an update by one host would
// change them under the others, which keep acting on their own values (a
// shorter ack_wait, set by a host started later, has the server deliver
// again a task another host is still running; one host's replicas: 1
// would take a replicated cluster's streams down to one copy). A host
// connected to servers it does not own therefore compares what it finds
// with its configuration and refuses to start on a difference, naming the
// key; a host with its own embedded server (one process per store, the
// store lock) applies its configuration, as the only host that set it up.
// Compared: every stream's replicas; the duplicate window of the work
// streams and the dead letters' (the finished keys' maximum age); the
// work streams' max_msgs and max_bytes (a full work stream refuses new
// tasks, discard policy "new", and Enqueue waits for room until its
// context ends: a later host's lower bound would block the Enqueue of
// every other host where they count on room, a higher or no bound would
// take away the back-pressure they count on, and a stream made without
// a bound stores message schedules, which a bounded one cannot); the dead
// letters' max_age, max_bytes and max_msgs (a later host's bounds would
// have its dead letters discarded or kept otherwise than the first host
// counts on); the ack wait, maximum deliveries and max_ack_pending of the
// work streams' consumers (a later host's max_ack_pending would bound the
// deliveries in flight of every host, across all of them) and the ack
// wait of the advisory stream's consumer; the replicas of the pool
// overrides' bucket (agreeOverrides). A bound of 0 and -1 both mean
// none. The key-value buckets of the sources' leases and the schedules'
// marks are compared too, when the host starts, and the admin audit
// stream when the admin server starts (see package platform; a host that
// owns its server applies its configuration to them). Compared on every
// host, one that owns its server too: the storage of every stream and of
// the overrides' bucket, which the server refuses to change (its refusal
// named no key).

// SettingDiffers returns the problem of a setting every host must agree
// on, found on the server with another value than this host's: a
// config.Problem at key (the full configuration key, so the host exits
// 2) wrapping ErrSettingsDiffer. want is this host's value, have the
// server's; what names what has it (`stream "X"`, `the leases bucket
// "Y"`), edit the command that changes it on the server. The platform's
// other shared streams and buckets (the admin audit, the sources'
// leases) report theirs with it too.
func SettingDiffers(key string, want, have any, what, edit string) error {
	return config.InvalidAs(ErrSettingsDiffer, key,
		"%v, but %s on the server has %v (made by another host or an earlier configuration): "+
			"every host on the NATS servers must have the same; to change it, change the server's first "+
			"(%s) and then every host's configuration",
		want, what, have, edit)
}

// differs returns the ErrSettingsDiffer problem for the key
// queue.jetstream.<key> (SettingDiffers).
func differs(key string, want, have any, what string) error {
	return SettingDiffers("queue.jetstream."+key, want, have, what, "nats stream edit / nats consumer edit")
}

// agrees reports whether this host checks what it finds on the server
// (see above): every host but one that owns its embedded server.
func (b *Backend) agrees() bool { return !b.ownsSrv }

// OwnsServer reports whether the backend started its own embedded server
// (mode "embedded" without Params.Server): it is then the only host on
// the server, and applies its configuration to the streams and consumers
// it finds instead of checking them against it (ErrSettingsDiffer).
func (b *Backend) OwnsServer() bool { return b.ownsSrv }

// streamKeys name the configuration keys a stream's settings come from,
// for the settings agreeStream compares beside its replicas; an empty one
// is not compared.
type streamKeys struct {
	dup, age, bytes, msgs string
}

// bound is a stream's bound n as the server keeps it: -1 for none (the
// server stores 0 as -1).
func bound(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// boundText shows the bound n, saying when it is none.
func boundText(n int64) string {
	if bound(n) == -1 {
		return fmt.Sprintf("%d (no bound)", n)
	}
	return fmt.Sprint(n)
}

// agreeStream checks the stream named want.Name, when it exists, against
// want (compareStream). A stream that does not exist passes.
func (b *Backend) agreeStream(ctx context.Context, want jetstream.StreamConfig, keys streamKeys) error {
	s, err := lookupStream(ctx, b.js, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: stream %q: %w", want.Name, err)
	}
	return b.compareStream(s.CachedInfo().Config, want, keys)
}

// compareStream compares have, a stream's configuration on the server,
// with want: its storage, which the server cannot change, on every host;
// and on a host that checks what it finds (agrees) its replicas and each
// setting keys names: its duplicate window (when want sets one), maximum
// age (when want sets one), maximum messages and maximum bytes (0 and -1
// both none).
func (b *Backend) compareStream(have, want jetstream.StreamConfig, keys streamKeys) error {
	what := fmt.Sprintf("stream %q", want.Name)
	if have.Storage != want.Storage {
		return storageDiffers(want.Storage, have.Storage, what)
	}
	if !b.agrees() {
		return nil
	}
	switch {
	case have.Replicas != want.Replicas:
		return differs("replicas", want.Replicas, have.Replicas, what)
	case keys.dup != "" && want.Duplicates != 0 && have.Duplicates != want.Duplicates:
		return differs(keys.dup, want.Duplicates, have.Duplicates, what+" (duplicate window)")
	case keys.age != "" && want.MaxAge != 0 && have.MaxAge != want.MaxAge:
		return differs(keys.age, want.MaxAge, have.MaxAge, what+" (max age)")
	case keys.msgs != "" && bound(have.MaxMsgs) != bound(want.MaxMsgs):
		return differs(keys.msgs, boundText(want.MaxMsgs), boundText(have.MaxMsgs), what+" (max messages)")
	case keys.bytes != "" && bound(have.MaxBytes) != bound(want.MaxBytes):
		return differs(keys.bytes, boundText(want.MaxBytes), boundText(have.MaxBytes), what+" (max bytes)")
	}
	return nil
}

// storageName is the Config.Storage value of the storage t.
func storageName(t jetstream.StorageType) string {
	if t == jetstream.MemoryStorage {
		return StorageMemory
	}
	return StorageFile
}

// storageDiffers is the problem of a stream found with another storage
// than this host's, at queue.jetstream.storage: the server refuses to
// change a stream's storage, for a host that owns it too, where its
// update failed with an error that named no key.
func storageDiffers(want, have jetstream.StorageType, what string) error {
	return config.InvalidAs(ErrSettingsDiffer, "queue.jetstream.storage",
		"%s, but %s on the server has %s storage (made by another host or an earlier configuration), "+
			"which the server cannot change: set storage: %s, or move the stream's messages elsewhere "+
			"and delete it (nats stream rm) to have it made anew with %s storage",
		storageName(want), what, storageName(have), storageName(have), storageName(want))
}

// setUpStream creates the stream cfg describes, or updates it when it
// exists (a host that owns its server checks its storage first,
// agreeStream). A host that checks what it finds (agrees) creates it, which
// the server refuses when the stream exists with another configuration
// (another host's create may have come first, a moment ago), and only
// then checks the stream against cfg (agreeStream, keys) and updates it:
// so of two hosts that start at once with different settings, one
// creates the stream and the other refuses to start, where a check before
// a create-or-update let both find nothing and the later one overwrite
// the settings under the first.
func (b *Backend) setUpStream(ctx context.Context, cfg jetstream.StreamConfig, keys streamKeys) (jetstream.Stream, error) {
	if b.agrees() {
		s, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			s, err := b.js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil, nil // it exists, made otherwise: checked below
			}
			return s, err
		})
		if err != nil || s != nil {
			return s, err
		}
	}
	// A host that owns the server checks the storage only, which its
	// update could not change.
	if err := b.agreeStream(ctx, cfg, keys); err != nil {
		return nil, err
	}
	return createOrUpdateStream(ctx, b.js, cfg)
}

// agreeConsumer checks the durable consumer of stream s, when it exists,
// against want: its ack wait (ack_wait), maximum deliveries (max_deliver)
// and, when want sets one, its maximum of deliveries in flight
// (max_ack_pending; the advisory stream's consumer has the server's).
func (b *Backend) agreeConsumer(ctx context.Context, s jetstream.Stream, want jetstream.ConsumerConfig) error {
	if !b.agrees() {
		return nil
	}
	c, err := s.Consumer(ctx, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: consumer %q on %q: %w", want.Durable, s.CachedInfo().Config.Name, err)
	}
	have := c.CachedInfo().Config
	what := fmt.Sprintf("consumer %q of stream %q", want.Durable, s.CachedInfo().Config.Name)
	switch {
	case have.AckWait != want.AckWait:
		return differs("ack_wait", want.AckWait, have.AckWait, what)
	case have.MaxDeliver != want.MaxDeliver:
		return differs("max_deliver", want.MaxDeliver, have.MaxDeliver, what)
	case want.MaxAckPending != 0 && have.MaxAckPending != want.MaxAckPending:
		return differs("max_ack_pending", want.MaxAckPending, have.MaxAckPending, what)
	}
	return nil
}

// setUpConsumer creates the durable consumer cfg describes on s, or
// updates it when it exists, as setUpStream does a stream: a host that
// checks what it finds creates it first, and checks (agreeConsumer) and
// updates one that exists with another configuration.
func (b *Backend) setUpConsumer(ctx context.Context, s jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if b.agrees() {
		c, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
			c, err := s.CreateConsumer(ctx, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				return nil, nil // it exists, made otherwise: checked below
			}
			return c, err
		})
		if err != nil || c != nil {
			return c, err
		}
		if err := b.agreeConsumer(ctx, s, cfg); err != nil {
			return nil, err
		}
	}
	return createOrUpdateConsumer(ctx, s, cfg)
}

// replicasProblem turns the server's refusal of replicated streams on a
// server outside a cluster into a problem naming queue.jetstream.replicas;
// other errors are returned as they are.
func replicasProblem(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errReplicasUnsupported {
		return fmt.Errorf("%w: %w", config.InvalidAs(ErrInvalidConfig, "queue.jetstream.replicas",
			"%d, but the server is not part of a JetStream cluster and keeps one replica: set replicas: 1, or connect to a cluster", replicas), err)
	}
	return err
}
