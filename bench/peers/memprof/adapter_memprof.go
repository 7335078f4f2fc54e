//go:build plbamemprof

// This file is an extra adapter for the peers harness (../shared/peers),
// not part of plba's build: run.sh in this directory copies the harness,
// adds it (with ../profile.go) and builds with the plbamemprof tag. It
// registers one system, memprof, which runs the system named by
// PEERS_MEMPROF_SYSTEM (plba-jetstream, natsjs, ...) unchanged and writes
// the child's allocation profile (pprof's allocs, every allocation
// sampled) three times: before Enqueue, after it, and when the n-th task
// is done. Compared with pprof's -base, the three show what each phase
// allocates and where:
//
//	go tool pprof -sample_index=alloc_objects -base <p>.setup -top <p>.enqueue
//	go tool pprof -sample_index=alloc_objects -base <p>.enqueue -top <p>.work
//
// Divide by the run's n for allocations per task. The harness's own
// allocation counts of a memprof run include the profiles' writing: read
// the profiles, not the table.
package main

import (
	"context"
	"runtime"
	"sync/atomic"
)

func init() {
	runtime.MemProfileRate = 1
	register(entry{Name: "memprof", New: newMemprof,
		Note: "the system named by PEERS_MEMPROF_SYSTEM, writing allocation profiles (plba experiment)"})
}

type memprofAdapter struct {
	profiled
	n    int64
	done atomic.Int64
}

func newMemprof(env Env) Adapter {
	return &memprofAdapter{profiled: newProfiled("memprof", env)}
}

func (a *memprofAdapter) Enqueue(ctx context.Context, n int) error {
	a.n = int64(n)
	a.write("setup")
	err := a.Adapter.Enqueue(ctx, n)
	a.write("enqueue")
	return err
}

func (a *memprofAdapter) Work(ctx context.Context, concurrency int, onDone func()) error {
	return a.Adapter.Work(ctx, concurrency, func() {
		if a.done.Add(1) == a.n {
			a.write("work")
		}
		onDone()
	})
}

// write writes the allocs profile as of now (after a collection, which
// the profile waits for) to a.prefix.phase.
func (a *memprofAdapter) write(phase string) {
	runtime.GC()
	writeProfile("memprof", "allocs", a.prefix+"."+phase)
}
