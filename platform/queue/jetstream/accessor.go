package jetstream

import "github.com/nats-io/nats.go/jetstream"

// JetStream returns the backend's JetStream context, for platform parts
// that keep their own streams on the same connection (the admin audit
// stream); nil before Start. Callers must not close the connection.
func (b *Backend) JetStream() jetstream.JetStream { return b.js }
