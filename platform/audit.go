package platform

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auditstream"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
)

// auditStore keeps the admin audit in the JetStream stream
// admin.audit.stream when the queue backend is JetStream (the admin server
// then depends on the backend, so it starts after it), and nowhere but the
// log and the ring otherwise. A host that owns its embedded server applies
// its settings to the stream; any other compares them with the stream's
// (auditstream.Store.Start).
func auditStore() fx.Option {
	return fx.Provide(func(b queue.Backend, js jetstream.Config, c admin.Config, log *zap.Logger) admin.AuditStore {
		jb, ok := b.(*jetstream.Backend)
		if !ok {
			return nil
		}
		return auditstream.New(jb.JetStream, c.Audit, js.WithDefaults().Replicas, log).OwnedWhen(jb.OwnsServer)
	})
}
