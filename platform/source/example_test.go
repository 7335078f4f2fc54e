package source_test

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// A polling source, supervised: it emits one task per poll through the
// enqueuer it is given (the worker package's producer in a host).
func ExamplePoll() {
	col := &collector{}
	polls := 0
	done := make(chan struct{})
	p := source.Poll("inbox", 10*time.Millisecond, 0, func(ctx context.Context, emit source.Emitter) error {
		polls++
		if polls == 3 {
			close(done)
		}
		if polls > 3 {
			return nil
		}
		return emit.Emit(ctx, &task.Task{Kind: "mail.fetch", Payload: []byte(fmt.Sprint(polls))})
	})
	s, err := source.NewSupervisor(source.Config{}, col, nil, nil, p)
	if err != nil {
		panic(err)
	}
	_ = s.Start(context.Background())
	<-done
	_ = s.Stop(context.Background())
	for _, t := range col.all() {
		fmt.Println(t.Kind, string(t.Payload))
	}
	fmt.Println("emitted:", s.Stats()[0].Emitted)
	// Output:
	// mail.fetch 1
	// mail.fetch 2
	// mail.fetch 3
	// emitted: 3
}
