package platform

import (
	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
	plog "github.com/plba/plba/platform/log"
)

// logging wires platform/log: the zap logger from the "log" section and
// fx's own events through it at debug level.
func logging() fx.Option {
	return fx.Options(
		config.Section[plog.Config](plog.Section),
		plog.Module,
		plog.FxLogger(),
	)
}
