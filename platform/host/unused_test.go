package host

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSectionOfAnAppNotComposedIsAProblem: a section that a file, the
// environment or --set fills but no composed module uses (its app is
// linked but not listed in host.apps) is a configuration problem naming
// the source and the section. validate and run took it without a word and
// ran without it; show left it out.
func TestSectionOfAnAppNotComposedIsAProblem(t *testing.T) {
	opts := []AppOption{OptionalApp("billing", billingModule), App("reports", reportsModule)}
	file := writeConfig(t, "show_test_billing:\n  url: https://billing.example\n")
	for _, args := range [][]string{{"config", "validate", "--config", file}, {"run", "--config", file}, {"config", "show", "--config", file}} {
		r := cli(t, args, opts...)
		require.Equal(t, ExitUsage, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, file+": show_test_billing: set, but no composed application uses this section (apps: reports): add its application to host.apps or remove the section", "%v", args)
	}

	// A section only the built-in configuration sets is nobody's mistake.
	builtin := append(opts, DefaultConfig("demo.yaml", []byte("show_test_billing:\n  url: https://billing.example\n")))
	r := cli(t, []string{"config", "validate"}, builtin...)
	require.Equal(t, ExitOK, r.code, r.stderr)

	t.Setenv("PLBA_SHOW_TEST_BILLING__URL", "https://billing.example")
	r = cli(t, []string{"config", "validate"}, opts...)
	require.Equal(t, ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "env PLBA_SHOW_TEST_BILLING__URL: show_test_billing: set, but no composed application uses this section")

	// Composed, the same settings are fine; an untouched section of an
	// app not composed is too.
	r = cli(t, []string{"config", "validate", "--config", file, "--set", "host.apps=[billing]"}, opts...)
	require.Equal(t, ExitOK, r.code, r.stderr)
}
