// Package buildinfo holds the version and commit stamped into the host
// binary by `make build` (-ldflags -X).
package buildinfo

import "runtime"

// Version and Commit are set at link time; "dev" and "none" otherwise.
var (
	Version = "dev"
	Commit  = "none"
)

// GoVersion is the Go toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
