package platform

import (
	"errors"
	"fmt"
	"strings"

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
// with "_AUDIT" (admin.AuditConfig.StreamFor, filled in when the
// configuration loads: withAuditStream): deployments that share a NATS
// server under their own prefixes keep their audits apart, as they do
// their queues. A name the server would refuse, or one of the host's own
// streams (hostStreamProblem), is a configuration problem (the host exits
// 2). A host that owns its embedded server applies its settings to the
// stream; any other compares them with the stream's
// (auditstream.Store.Start).
func auditStore() fx.Option {
	return fx.Provide(func(b queue.Backend, js jetstream.Config, c admin.Config, log *zap.Logger) (admin.AuditStore, error) {
		jb, ok := b.(*jetstream.Backend)
		if !ok {
			return nil, nil
		}
		js = js.WithDefaults()
		ac := c.Audit
		key := AdminSection + ".audit.stream"
		// The name the prefix gives (withAuditStream filled it in, or it
		// was set to it): a problem is the prefix's.
		set := ac.Stream != "" && ac.Stream != js.StreamPrefix+admin.AuditStreamSuffix
		if !set {
			ac.Stream = ""
			key = JetStreamSection + ".stream_prefix"
		}
		stream, err := ac.StreamFor(js.StreamPrefix)
		if err == nil && set {
			if msg := hostStreamProblem(stream, js); msg != "" {
				err = errors.New(msg)
			}
		}
		if err != nil {
			var ps config.Problems
			ps.Add(key, "%v", err)
			return nil, ps.Err()
		}
		ac.Stream = stream
		return auditstream.New(jb.JetStream, ac, js.Replicas, log).OwnedWhen(jb.OwnsServer), nil
	})
}

// withAuditStream fills admin.audit.stream, when no layer set it, with
// the stream the audit goes to: the JetStream stream prefix with
// "_AUDIT" (admin.AuditConfig.StreamFor), so that `host config show` and
// the effective configuration show the name used. With a JetStream
// section that does not decode it is left empty (that section's problems
// are reported).
func withAuditStream(a admin.Config, cfg *config.Config) admin.Config {
	if a.Audit.Stream != "" {
		return a
	}
	var js jetstream.Config
	if cfg.Decode(JetStreamSection, &js) != nil {
		return a
	}
	a.Audit.Stream, _ = a.Audit.StreamFor(js.StreamPrefix)
	return a
}

// hostStreamProblem says why the audit stream name, set in
// admin.audit.stream, would be one of the streams the host keeps, whose
// setting up would change that stream's subjects and limits to the
// audit's and write the audit into it; "" when it is none. The
// backend's own streams under js.StreamPrefix are the backend's to name
// (jetstream.Config.OwnStream); every key-value bucket's stream (KV_...:
// sources.lease.bucket, sources.lease.marks_bucket, the buckets of
// applications) and object store's (OBJ_...) is refused too.
func hostStreamProblem(name string, js jetstream.Config) string {
	p := js.StreamPrefix
	what, ok := js.OwnStream(name)
	switch {
	case ok:
	case strings.HasPrefix(name, "KV_"):
		what = "the stream of a key-value bucket (KV_<bucket>: sources.lease.bucket, sources.lease.marks_bucket, the buckets of applications)"
	case strings.HasPrefix(name, "OBJ_"):
		what = "the stream of an object store (OBJ_<store>)"
	default:
		return ""
	}
	return fmt.Sprintf("the audit stream %q is %s: the audit would be written into it; name a stream of its own, or leave it unset for %s%s",
		name, what, p, admin.AuditStreamSuffix)
}
