package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// The control API served by the admin server: a task that failed for
// good is found among the queue's dead letters and re-driven once its
// cause is fixed; it runs again from attempt 1 and succeeds.
func Example() {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	defer func() { _ = b.Close(ctx) }()
	var fixed atomic.Bool
	succeeded := make(chan int, 1)
	rt, err := worker.New(worker.Params{Backend: b, Routes: []task.Route{{Kind: "invoice.send", Queue: "billing", MaxAttempts: 1,
		Handler: task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
			if !fixed.Load() {
				return task.Permanent(errors.New("mail server refused the sender"))
			}
			succeeded <- t.Attempt
			return nil
		})}}})
	if err != nil {
		panic(err)
	}
	api := control.New(control.Params{Backend: b, Runtime: rt})
	srv, err := admin.NewServer(admin.Config{Listen: "127.0.0.1:0"}, nil, admin.StatusInfo{}, nil, nil, api.Routes())
	if err != nil {
		panic(err)
	}
	web := httptest.NewServer(srv.Handler()) // a host serves it on admin.listen
	defer web.Close()
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = rt.Stop(ctx) }()

	t := &task.Task{Kind: "invoice.send", Key: "invoice-17", Payload: []byte(`{"number":"17"}`)}
	if err := rt.Producer().Enqueue(ctx, t); err != nil {
		panic(err)
	}
	var dead control.DeadList
	for len(dead.Items) == 0 {
		time.Sleep(10 * time.Millisecond)
		get(web.URL+control.Prefix+"/queues/billing/dead", &dead)
	}
	fmt.Println(dead.Items[0].Key, "|", dead.Items[0].Reason)

	fixed.Store(true)
	var res control.DeadResult
	post(web.URL+control.Prefix+"/queues/billing/dead/redrive", control.DeadAction{IDs: []string{dead.Items[0].ID}}, &res)
	fmt.Println("re-driven:", res.Done, "attempt:", <-succeeded)
	// Output:
	// invoice-17 | mail server refused the sender
	// re-driven: 1 attempt: 1
}

func get(url string, out any) {
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		panic(err)
	}
}

func post(url string, body, out any) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		panic(err)
	}
}
