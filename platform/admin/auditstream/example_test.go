package auditstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auditstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// The audit kept in a JetStream stream: what one process appended, the
// next reads back at start (the admin server fills its ring from Recent).
func Example() {
	dir, err := os.MkdirTemp("", "auditstream-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: dir}, nil)
	if err != nil {
		panic(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	nc, err := nats.Connect("", srv.ClientOptions()...)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}

	st := auditstream.New(func() jetstream.JetStream { return js }, admin.AuditConfig{}.WithDefaults(), 1, nil)
	if err := st.Start(ctx); err != nil {
		panic(err)
	}
	for i, action := range []string{"pool.pause", "dlq.redrive"} {
		e := admin.AuditEntry{ID: int64(i + 1), Time: time.Now(), Identity: "ops", Role: admin.RoleOperator,
			Action: action, Target: "queue/billing", Result: admin.AuditOK}
		if err := st.Append(ctx, e); err != nil {
			panic(err)
		}
	}

	again := auditstream.New(func() jetstream.JetStream { return js }, admin.AuditConfig{}.WithDefaults(), 1, nil)
	if err := again.Start(ctx); err != nil {
		panic(err)
	}
	es, err := again.Recent(ctx, 10)
	if err != nil {
		panic(err)
	}
	for _, e := range es {
		fmt.Println(e.Identity, e.Action, e.Target, e.Result)
	}
	// Output:
	// ops pool.pause queue/billing ok
	// ops dlq.redrive queue/billing ok
}
