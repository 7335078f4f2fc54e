//go:build plbacpuprof

// This file is an extra adapter for the peers harness (../shared/peers),
// not part of plba's build: run.sh in this directory copies the harness,
// adds it (with ../profile.go) and builds with the plbacpuprof tag. It
// registers one system, cpuprof, which runs the system named by
// PEERS_CPUPROF_SYSTEM (plba-jetstream, natsjs, ...) unchanged and writes
// the child's CPU profile of each phase, <prefix>.enqueue (the Enqueue
// call) and <prefix>.work (from the start of Work to the n-th task done),
// and, with PEERS_CPUPROF_CONTENTION=1, the mutex and block profiles of
// the work phase (<prefix>.mutex, <prefix>.block; every contention event
// sampled, which slows the run):
//
//	go tool pprof -top <p>.work
//	go tool pprof -top <p>.mutex
//
// It also prints each phase's CPU time per task (user plus system, of the
// whole child process, embedded servers included) to stderr, and appends
// it as a JSON line to PEERS_CPUPROF_DIR/cpuprof.jsonl: on a shared
// machine, where the rates of the table swing by 2x between runs, CPU time
// per task moves much less, so it compares builds better.
//
// The profiling itself costs a few percent; compare profiles, not the
// table's rates.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func init() {
	register(entry{Name: "cpuprof", New: newCPUProf,
		Note: "the system named by PEERS_CPUPROF_SYSTEM, writing CPU, mutex and block profiles (plba experiment)"})
}

type cpuprofAdapter struct {
	profiled
	c     int
	phase string
	cpu0  time.Duration // process CPU time at the start of the phase
	n     int64
	done  atomic.Int64
	stop  sync.Once
	file  *os.File
}

func newCPUProf(env Env) Adapter {
	return &cpuprofAdapter{profiled: newProfiled("cpuprof", env)}
}

func (a *cpuprofAdapter) Enqueue(ctx context.Context, n int) error {
	a.n = int64(n)
	a.start("enqueue")
	err := a.Adapter.Enqueue(ctx, n)
	a.end()
	return err
}

func (a *cpuprofAdapter) Work(ctx context.Context, concurrency int, onDone func()) error {
	a.stop = sync.Once{}
	a.c = concurrency
	contention := os.Getenv("PEERS_CPUPROF_CONTENTION") == "1"
	if contention {
		runtime.SetMutexProfileFraction(1)
		runtime.SetBlockProfileRate(1)
	}
	a.start("work")
	return a.Adapter.Work(ctx, concurrency, func() {
		if a.done.Add(1) == a.n {
			a.stop.Do(func() {
				a.end()
				if contention {
					runtime.SetMutexProfileFraction(0)
					runtime.SetBlockProfileRate(0)
					writeProfile("cpuprof", "mutex", a.prefix+".mutex")
					writeProfile("cpuprof", "block", a.prefix+".block")
				}
			})
		}
		onDone()
	})
}

func (a *cpuprofAdapter) start(phase string) {
	a.phase, a.cpu0 = phase, processCPU()
	f, err := os.Create(a.prefix + "." + phase)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprof:", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprof:", err)
		f.Close()
		return
	}
	a.file = f
}

func (a *cpuprofAdapter) end() {
	a.report()
	if a.file == nil {
		return
	}
	pprof.StopCPUProfile()
	a.file.Close()
	fmt.Fprintln(os.Stderr, "cpuprof: wrote", a.file.Name())
	a.file = nil
}

// report prints the CPU time per task of the phase that ends now.
func (a *cpuprofAdapter) report() {
	if a.n == 0 {
		return
	}
	us := float64(processCPU()-a.cpu0) / float64(time.Microsecond) / float64(a.n)
	line := fmt.Sprintf(`{"system":%q,"c":%d,"phase":%q,"n":%d,"cpu_us_per_task":%.2f}`, a.system, a.c, a.phase, a.n, us)
	fmt.Fprintln(os.Stderr, "cpuprof:", line)
	f, err := os.OpenFile(filepath.Join(a.dir, "cpuprof.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprof:", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// processCPU is the CPU time the process used so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
