// Command host is the plba runtime: it composes the platform and the
// configured applications into one uber/fx application and runs it.
//
//	host run [--config FILE]... [--set key=value]...
//	host config show [--config FILE]... [--set key=value]...
//	host config validate [--config FILE]... [--set key=value]...
//	host version
//
// Exit status: 0 clean stop, 1 runtime failure (a component failed to
// start, or failed fatally later), 2 usage or configuration error.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}
