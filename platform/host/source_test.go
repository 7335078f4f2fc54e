package host

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
)

// TestGraphProblemsNameTheirSource: a problem found while building the
// host, after the configuration loaded (workers.<queue> for a queue no
// route uses, a module's own check of its settings), names the file, the
// variable or the --set that gave its key, as a problem found while
// loading does. It used to come without one ("workers.echoez: no route
// uses queue"), and a keyed problem wrapped in a module's error came as
// the whole error text, without its source either.
func TestGraphProblemsNameTheirSource(t *testing.T) {
	file := writeConfig(t, "workers:\n  echoez:\n    concurrency: 2\n")
	for _, args := range [][]string{{"config", "validate", "--config", file}, {"run", "--config", file}, {"config", "show", "--config", file}} {
		r := cli(t, args)
		require.Equal(t, ExitUsage, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, "\n  "+file+`: workers.echoez: no route uses queue "echoez"`, "%v", args)
	}

	problem := fx.Invoke(func() error {
		return fmt.Errorf("invoices: %w", config.Invalid("admin.read_timeout", "must not exceed the invoices timeout"))
	})
	r := cli(t, []string{"config", "validate", "--set", "admin.read_timeout=7s"}, App("invoices", problem))
	require.Equal(t, ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "invalid configuration (1 problem(s)):\n  --set admin.read_timeout=...: admin.read_timeout: must not exceed the invoices timeout\n")
}
