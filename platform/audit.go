package platform

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auditstream"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
)

// auditStore keeps the admin audit in a JetStream stream when the queue
// backend is JetStream (the admin server then depends on the backend, so
// it starts after it), and nowhere but the log and the ring otherwise.
// The stream is admin.audit.stream or, unset, the host's stream prefix
// with "_AUDIT" (admin.AuditConfig.StreamFor): deployments that share a
// NATS server under their own prefixes keep their audits apart, as they
// do their queues. A name the server would refuse is a configuration
// problem (the host exits 2). A host that owns its embedded server
// applies its settings to the stream; any other compares them with the
// stream's (auditstream.Store.Start).
func auditStore() fx.Option {
	return fx.Provide(func(b queue.Backend, js jetstream.Config, c admin.Config, log *zap.Logger) (admin.AuditStore, error) {
		jb, ok := b.(*jetstream.Backend)
		if !ok {
			return nil, nil
		}
		ac := c.Audit
		stream, err := ac.StreamFor(js.WithDefaults().StreamPrefix)
		if err != nil {
			key := AdminSection + ".audit.stream"
			if ac.Stream == "" {
				key = JetStreamSection + ".stream_prefix"
			}
			var ps config.Problems
			ps.Add(key, "%v", err)
			return nil, ps.Err()
		}
		ac.Stream = stream
		return auditstream.New(jb.JetStream, ac, js.WithDefaults().Replicas, log).OwnedWhen(jb.OwnsServer), nil
	})
}
