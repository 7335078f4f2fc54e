//go:build plbacpuprof || plbamemprof

// This file is shared by the profiling adapters of the peers harness
// (cpuprof/adapter_cpuprof.go, memprof/adapter_memprof.go), not part of
// plba's build: ../harness.sh copies it into the harness beside them.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
)

// profiled is what a profiling adapter wraps: the system it runs in its
// place and where it writes.
type profiled struct {
	Adapter
	system string // the wrapped system's name
	dir    string // where the profiles go
	prefix string // path of the profiles, without the phase: dir/tool-system-pid
}

// newProfiled returns the adapter of the system named by
// PEERS_<TOOL>_SYSTEM, to be run by the profiling adapter tool, which
// writes to PEERS_<TOOL>_DIR (default os.TempDir()). It panics when the
// variable names no system, or tool itself.
func newProfiled(tool string, env Env) profiled {
	upper := strings.ToUpper(tool)
	name := os.Getenv("PEERS_" + upper + "_SYSTEM")
	e, ok := registry[name]
	if !ok || name == tool {
		panic(fmt.Sprintf("%s: PEERS_%s_SYSTEM=%q names no other system", tool, upper, name))
	}
	dir := os.Getenv("PEERS_" + upper + "_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	return profiled{Adapter: e.New(env), system: name, dir: dir,
		prefix: filepath.Join(dir, fmt.Sprintf("%s-%s-%d", tool, name, os.Getpid()))}
}

// writeProfile writes runtime/pprof's profile name as of now to path,
// telling stderr, under tool's name, what it wrote or why it could not.
func writeProfile(tool, name, path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
	}
	fmt.Fprintln(os.Stderr, tool+": wrote", f.Name())
}
