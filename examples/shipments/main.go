// Command shipments runs the shipments application on the plba host:
//
//	go run . run --config config.yaml
//	go run . config validate --config config.yaml
package main

import (
	"os"

	"github.com/plba/plba/platform/host"

	"example.com/shipments/shipments"
)

func main() {
	os.Exit(host.Main(os.Args[1:], host.App("shipments", shipments.Module)))
}
