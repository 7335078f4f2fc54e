package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

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

// differs returns the ErrSettingsDiffer problem for key: want is this
// host's value, have the one on the server.
func differs(key string, want, have any, what string) error {
	return config.InvalidAs(ErrSettingsDiffer, "queue.jetstream."+key,
		"%v, but %s on the server has %v (made by another host or an earlier configuration): "+
			"every host on the stream prefix must have the same; to change it, change the server's first "+
			"(nats stream edit / nats consumer edit) and then every host's configuration",
		want, what, have)
}

// agrees reports whether this host checks what it finds on the server
// (see above): every host but one that owns its embedded server.
func (b *Backend) agrees() bool { return !b.ownsSrv }

// agreeStream checks the stream named want.Name, when it exists, against
// want: its replicas, and its duplicate window when want sets one
// (dupKey names the setting it comes from), or its maximum age when want
// sets one (ageKey). A stream that does not exist passes.
func (b *Backend) agreeStream(ctx context.Context, want jetstream.StreamConfig, dupKey, ageKey string) error {
	if !b.agrees() {
		return nil
	}
	s, err := lookupStream(ctx, b.js, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: stream %q: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	what := fmt.Sprintf("stream %q", want.Name)
	switch {
	case have.Replicas != want.Replicas:
		return differs("replicas", want.Replicas, have.Replicas, what)
	case dupKey != "" && want.Duplicates != 0 && have.Duplicates != want.Duplicates:
		return differs(dupKey, want.Duplicates, have.Duplicates, what+" (duplicate window)")
	case ageKey != "" && want.MaxAge != 0 && have.MaxAge != want.MaxAge:
		return differs(ageKey, want.MaxAge, have.MaxAge, what+" (max age)")
	}
	return nil
}

// agreeConsumer checks the durable consumer of the work stream s, when it
// exists, against this host's ack_wait and max_deliver.
func (b *Backend) agreeConsumer(ctx context.Context, s jetstream.Stream) error {
	if !b.agrees() {
		return nil
	}
	c, err := s.Consumer(ctx, b.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: consumer %q on %q: %w", b.cfg.Consumer, s.CachedInfo().Config.Name, err)
	}
	have := c.CachedInfo().Config
	what := fmt.Sprintf("consumer %q of stream %q", b.cfg.Consumer, s.CachedInfo().Config.Name)
	switch {
	case have.AckWait != b.cfg.AckWait:
		return differs("ack_wait", b.cfg.AckWait, have.AckWait, what)
	case have.MaxDeliver != b.cfg.MaxDeliver:
		return differs("max_deliver", b.cfg.MaxDeliver, have.MaxDeliver, what)
	}
	return nil
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
