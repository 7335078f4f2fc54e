// Command host is the plba runtime with the applications that live in this
// repository: it composes the platform and the configured applications
// into one uber/fx application and runs it (see platform/host).
//
//	host run [--config FILE]... [--set key=value]...
//	host config show [--config FILE]... [--set key=value]...
//	host config validate [--config FILE]... [--set key=value]...
//	host version
//
// Exit status: 0 clean stop, 1 runtime failure (a component failed to
// start, or failed fatally later), 2 usage or configuration error.
package main

import (
	"os"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/configs"
	"github.com/plba/plba/modules/loadgen"
	"github.com/plba/plba/platform/host"
)

func main() {
	os.Exit(host.Main(os.Args[1:],
		// The pilot: order mails from an IMAP mailbox to stored orders.
		host.OptionalApp("mailorder", mailorder.Module),
		// The synthetic workload, for benchmarks and crash tests.
		host.OptionalApp("loadgen", loadgen.Module),
		host.DefaultConfig("configs/demo.yaml", configs.Demo),
	))
}
