package embedded_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// An embedded NATS server with JetStream storing under a directory, and a
// client in the same process (no network listener): a message stored in
// a stream is read back.
func ExampleStart() {
	dir, err := os.MkdirTemp("", "embedded-example")
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
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		panic(err)
	}
	if _, err := js.Publish(ctx, "orders.new", []byte("order 17")); err != nil {
		panic(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Subject, string(m.Data))
	// Output: orders.new order 17
}
