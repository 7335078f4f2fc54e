package main

import (
	"go.uber.org/fx"

	"github.com/plba/plba/modules/loadgen"
)

// The synthetic workload, for benchmarks and crash tests: host.apps: [loadgen].
func init() { knownApps["loadgen"] = func() fx.Option { return loadgen.Module } }
