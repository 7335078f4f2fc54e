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
	sys0  time.Duration // of which system time
	flt0  int64         // minor page faults at the start of the phase
	gc0   uint32        // garbage collections completed before the phase
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
	a.phase = phase
	a.gc0 = numGC()
	a.cpu0, a.sys0, a.flt0 = processCPU()
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

// report prints the CPU time per task of the phase that ends now, the
// system time and minor page faults per task within it, and the garbage
// collections it saw. A page fault is the first touch of fresh memory
// (on the 2-core test machine, tens of µs of the process's CPU time):
// while no collection has run in a phase, every byte it allocates is
// fresh, after one it reuses freed memory; whether one comes early in the
// work phase is what splits plba-memory's runs into fast and slow ones.
func (a *cpuprofAdapter) report() {
	if a.n == 0 {
		return
	}
	cpu, sys, flt := processCPU()
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(a.n) }
	line := fmt.Sprintf(`{"system":%q,"c":%d,"phase":%q,"n":%d,"cpu_us_per_task":%.2f,"sys_us_per_task":%.2f,"faults_per_task":%.3f,"gcs":%d}`,
		a.system, a.c, a.phase, a.n, per(cpu-a.cpu0), per(sys-a.sys0), float64(flt-a.flt0)/float64(a.n), numGC()-a.gc0)
	fmt.Fprintln(os.Stderr, "cpuprof:", line)
	f, err := os.OpenFile(filepath.Join(a.dir, "cpuprof.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprof:", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// numGC is the number of garbage collections completed so far.
func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

// processCPU is the CPU time the process used so far (user and system),
// the system time alone, and its minor page faults (first touches of
// memory the kernel then maps).
func processCPU() (cpu, sys time.Duration, faults int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano()), ru.Minflt
}
