package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
)

// result is what one in-process run of the command line left behind.
type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, args []string, opts ...AppOption) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(args, &out, &errb, append([]AppOption{Name("invoices")}, opts...)...)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// Every command's --help exits 0 on stdout and documents its flags.
func TestHelpExits0AndDocumentsFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"config", "--help"}, {"config", "show", "--help"}, {"config", "validate", "-h"}, {"help", "run"}} {
		r := cli(t, args)
		require.Equal(t, ExitOK, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stdout, "Usage:", "%v", args)
		if args[0] != "--help" {
			require.Contains(t, r.stdout, "--config FILE", "%v", args)
			require.Contains(t, r.stdout, "--set key=value", "%v", args)
		}
	}
	r := cli(t, []string{"run", "--help"})
	require.Contains(t, r.stdout, "Exit status: 0 clean stop, 1 runtime failure")
	require.Contains(t, r.stdout, "built-in defaults")
}

func TestVersionFlagAndCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := cli(t, args)
		require.Equal(t, ExitOK, r.code, r.stderr)
		require.Regexp(t, `^invoices \S+ \(commit \S+, go1\.\d+`, r.stdout)
	}
}

// A typo gets a suggestion and exit status 2, also with flags after it.
func TestTypoSuggestsCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rn"}, "run"},
		{[]string{"rnu", "--config", "x.yaml"}, "run"},
		{[]string{"config", "valdate"}, "validate"},
		{[]string{"confg", "show"}, "config"},
	} {
		r := cli(t, tc.args)
		require.Equal(t, ExitUsage, r.code, "%v", tc.args)
		require.Contains(t, r.stderr, "Did you mean this?\n\t"+tc.want, "%v", tc.args)
		require.Contains(t, r.stderr, "Usage:", "%v", tc.args)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{}, {"--bogus"}, {"run", "--bogus"}, {"run", "extra"}, {"config"}, {"version", "x"}} {
		r := cli(t, args)
		require.Equal(t, ExitUsage, r.code, "%v", args)
		require.Contains(t, r.stderr, "invoices: ", "%v", args)
		require.Contains(t, r.stderr, "Usage:", "%v", args)
	}
	require.Contains(t, cli(t, []string{"--bogus"}).stderr, "unknown flag: --bogus")
	require.Contains(t, cli(t, []string{"run", "--bogus"}).stderr, "unknown flag: --bogus")
}

// validate: 2 for a configuration problem (also one found while building
// the graph), 1 for a graph that fails for another reason, 0 when valid.
func TestValidateExitCodes(t *testing.T) {
	ok := cli(t, []string{"config", "validate"})
	require.Equal(t, ExitOK, ok.code, ok.stderr)
	require.Contains(t, ok.stdout, "configuration valid (built-in defaults, digest ")

	bad := cli(t, []string{"config", "validate", "--config", writeConfig(t, "admin:\n  listen: nope\n")})
	require.Equal(t, ExitUsage, bad.code)
	require.Contains(t, bad.stderr, "admin.listen")

	unknown := cli(t, []string{"config", "validate", "--set", "host.apps=[billing]"}, App("invoices", fx.Options()))
	require.Equal(t, ExitUsage, unknown.code)
	require.Contains(t, unknown.stderr, `--set host.apps=...: host.apps[0]`)
	require.Contains(t, unknown.stderr, `unknown app "billing" (known: invoices)`)

	// A module whose constructor fails with a keyed problem: exit 2.
	problem := fx.Invoke(func() error {
		return fmt.Errorf("invoices: %w", config.Invalid("invoices.url", "must be an http URL"))
	})
	r := cli(t, []string{"config", "validate"}, App("invoices", problem))
	require.Equal(t, ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "invoices.url: must be an http URL")

	// A module that cannot be built for another reason: exit 1.
	broken := fx.Invoke(func() error { return errors.New("no database driver linked") })
	r = cli(t, []string{"config", "validate"}, App("invoices", broken))
	require.Equal(t, ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, "no database driver linked")
}

// App modules are composed on every run; OptionalApp modules only when
// host.apps names them.
func TestAppsComposed(t *testing.T) {
	var got []string
	mark := func(name string) fx.Option { return fx.Invoke(func() { got = append(got, name) }) }
	opts := []AppOption{App("invoices", mark("invoices")), OptionalApp("loadgen", mark("loadgen"))}

	r := cli(t, []string{"config", "validate"}, opts...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, []string{"invoices"}, got)

	got = nil
	r = cli(t, []string{"config", "validate", "--set", "host.apps=[loadgen,invoices]"}, opts...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, []string{"invoices", "loadgen"}, got)
}

func TestBadAppOptions(t *testing.T) {
	r := cli(t, []string{"version"}, App("a", fx.Options()), App("a", fx.Options()))
	require.Equal(t, ExitUsage, r.code)
	require.Contains(t, r.stderr, `app "a" is given twice`)
}

// Without --config the built-in configuration is used and named; a run
// names it in its first log line.
func TestDefaultConfig(t *testing.T) {
	demo := DefaultConfig("demo.yaml", []byte("log:\n  level: debug\n"))
	r := cli(t, []string{"config", "show"}, demo)
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "level: debug")

	r = cli(t, []string{"config", "validate"}, demo)
	require.Contains(t, r.stdout, "(embedded) demo.yaml")

	o, err := newOptions([]AppOption{demo})
	require.NoError(t, err)
	require.Equal(t, "the built-in demo configuration (embedded) demo.yaml (no --config given)", o.configSource(&configFlags{}))
	require.Equal(t, "a.yaml, b.yaml", o.configSource(&configFlags{files: []string{"a.yaml", "b.yaml"}}))
}
