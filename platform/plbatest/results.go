package plbatest

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/plba/plba/platform/task"
)

// Deliveries returns every finished delivery of tasks of kind ("": of
// every kind), in the order they finished.
func (k *Kit) Deliveries(kind string) []Delivery {
	ds, _ := k.rec.snapshot()
	var out []Delivery
	for _, d := range ds {
		if kind == "" || d.Task.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func (k *Kit) withOutcome(kind string, o task.Outcome) []Delivery {
	var out []Delivery
	for _, d := range k.Deliveries(kind) {
		if d.Outcome == o {
			out = append(out, d)
		}
	}
	return out
}

// Succeeded returns the deliveries of kind ("": every kind) that
// succeeded.
func (k *Kit) Succeeded(kind string) []Delivery { return k.withOutcome(kind, task.Succeeded) }

// Retried returns the deliveries of kind ("": every kind) that failed and
// were scheduled again (Err, RetryIn).
func (k *Kit) Retried(kind string) []Delivery { return k.withOutcome(kind, task.Retried) }

// DeadLettered returns the deliveries of kind ("": every kind) that went
// to the dead letter (Reason).
func (k *Kit) DeadLettered(kind string) []Delivery { return k.withOutcome(kind, task.DeadLettered) }

// Enqueued returns the tasks of kind ("": every kind) enqueued since the
// kit started (by the test, a source or a handler), in order, the
// duplicates the backend dropped included (Enqueued.Dropped).
func (k *Kit) Enqueued(kind string) []Enqueued {
	_, es := k.rec.snapshot()
	var out []Enqueued
	for _, e := range es {
		if kind == "" || e.Task.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// EnqueuedBy returns the arguments of the tasks of kind that handlers of
// tasks of byKind enqueued (byKind "": enqueued by anyone, the test and
// sources included), in order, the duplicates the backend dropped
// included (see Kit.Enqueued). A payload that does not decode fails the
// test.
func EnqueuedBy[A any](k *Kit, byKind string, kind task.Kind[A]) []A {
	k.t.Helper()
	var out []A
	for _, e := range enqueuedBy(k, byKind, kind) {
		out = append(out, e.args)
	}
	return out
}

type enqueuedArgs[A any] struct {
	args    A
	dropped bool
}

func enqueuedBy[A any](k *Kit, byKind string, kind task.Kind[A]) []enqueuedArgs[A] {
	k.t.Helper()
	var out []enqueuedArgs[A]
	for _, e := range k.Enqueued(kind.Name()) {
		if byKind != "" && (e.By == nil || e.By.Kind != byKind) {
			continue
		}
		a, err := kind.Args(e.Task)
		if err != nil {
			k.t.Fatalf("plbatest: %v", err)
		}
		out = append(out, enqueuedArgs[A]{a, e.Dropped})
	}
	return out
}

// RequireEnqueued fails the test unless a handler of a byKind task (""
// : anyone) enqueued a task of kind whose arguments equal want
// (reflect.DeepEqual after a JSON round trip, as the handler will see
// them) and the backend stored it: a task it dropped as a duplicate
// (Enqueued.Dropped) does not count, and the failure says it was dropped.
func RequireEnqueued[A any](k *Kit, byKind string, kind task.Kind[A], want A) {
	k.t.Helper()
	probe, err := kind.New(want)
	if err != nil {
		k.t.Fatalf("plbatest: %v", err)
	}
	norm, err := kind.Args(probe)
	if err != nil {
		k.t.Fatalf("plbatest: %v", err)
	}
	got := enqueuedBy(k, byKind, kind)
	dropped := false
	for _, e := range got {
		if reflect.DeepEqual(e.args, norm) {
			if !e.dropped {
				return
			}
			dropped = true
		}
	}
	by := "anyone"
	if byKind != "" {
		by = "a handler of " + byKind
	}
	if dropped {
		k.t.Fatalf("plbatest: the %s task with args %+v enqueued by %s was dropped by the backend as a duplicate of its key (not stored, it will not run); enqueued: %s", kind.Name(), want, by, list(got))
	}
	k.t.Fatalf("plbatest: no %s task with args %+v was enqueued by %s; enqueued: %s", kind.Name(), want, by, list(got))
}

func list[A any](es []enqueuedArgs[A]) string {
	if len(es) == 0 {
		return "none"
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%+v", e.args)
		if e.dropped {
			parts[i] += " (dropped)"
		}
	}
	return strings.Join(parts, ", ")
}

// WaitEnqueued waits until at least n tasks of kind ("": any kind) were
// enqueued (by a source running on its own, say) and returns them; the
// test fails after the kit's Timeout.
func (k *Kit) WaitEnqueued(kind string, n int) []Enqueued {
	k.t.Helper()
	deadline := time.Now().Add(k.timeout)
	for {
		es := k.Enqueued(kind)
		if len(es) >= n {
			return es
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("plbatest: %d task(s) of kind %q enqueued after %s, want %d", len(es), kind, k.timeout, n)
			return es
		}
		time.Sleep(pollEvery)
	}
}
