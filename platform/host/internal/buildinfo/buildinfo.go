// Package buildinfo holds the version and commit stamped into a host
// binary at link time:
//
//	go build -ldflags '-X github.com/plba/plba/platform/host/internal/buildinfo.Version=v1.2.3 -X github.com/plba/plba/platform/host/internal/buildinfo.Commit=abc123'
//
// (`make build` does this for cmd/host). Without them the version is the
// main module's version as the Go toolchain recorded it, if any.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version and Commit are set at link time; "dev" and "none" otherwise.
var (
	Version = "dev"
	Commit  = "none"
)

// GoVersion is the Go toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }

// Resolved returns Version and Commit, completed from the build
// information the Go toolchain embeds when they were not set at link time:
// the main module's version (a tagged `go install`) and the VCS revision.
func Resolved() (version, commit string) {
	version, commit = Version, Commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, commit
	}
	if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	if commit == "none" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				commit = s.Value[:7]
			}
		}
	}
	return version, commit
}
