package platform

import (
	"go.uber.org/fx"

	plog "github.com/plba/plba/platform/log"
)

// logging wires platform/log: the zap logger from the "log" section.
func logging() fx.Option {
	return fx.Options(
		plog.Declared.Provide(),
		plog.Module,
	)
}

// fxLogger routes fx's own events through the zap logger at debug level.
// It must sit at the root of the app: fx.WithLogger inside an fx.Module
// only covers that module's events.
func fxLogger() fx.Option { return plog.FxLogger() }
