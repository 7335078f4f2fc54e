package jetstream

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
)

// JetStream returns the backend's JetStream context, for platform parts
// that keep their own streams on the same connection (the admin audit
// stream); nil before Start. Callers must not close the connection.
func (b *Backend) JetStream() jetstream.JetStream { return b.js }

// createOrUpdateStream is js.CreateOrUpdateStream, each attempt bounded
// and retried while a cluster forms or other hosts create the same
// stream (jsapi.Retry).
func createOrUpdateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateOrUpdateStream(ctx, cfg) })
}

// createOrUpdateConsumer is s.CreateOrUpdateConsumer, retried as
// createOrUpdateStream is.
func createOrUpdateConsumer(ctx context.Context, s jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Consumer, error) { return s.CreateOrUpdateConsumer(ctx, cfg) })
}

// lookupStream is js.Stream, each attempt bounded and retried as
// createOrUpdateStream is: on a cluster, a lookup of a stream another
// host is creating at that moment may get no answer. A stream that does
// not exist is jetstream.ErrStreamNotFound at once.
func lookupStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	return jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, name) })
}
