package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// A section type's WithDefaults applies after decoding: the graph and the
// rendered YAML get effective values, not zeros standing for a default.
func TestWithDefaultsApplied(t *testing.T) {
	cfg, err := loadSets(t, false, "provide_test_pools.orders.size=0", "provide_test_pools.mail.size=3")
	require.NoError(t, err)
	var p pools
	require.NoError(t, cfg.Decode("provide_test_pools", &p))
	require.Equal(t, 8, p["orders"].Size)
	require.Equal(t, 3, p["mail"].Size)
	out, err := cfg.Show([]string{"provide_test_pools"}, nil)
	require.NoError(t, err)
	require.Contains(t, string(out), "orders:\n        size: 8")
}

// An incomplete configuration still prints, the problems marked on their
// keys, and only the sections asked for.
func TestShowMarksProblems(t *testing.T) {
	cfg, err := loadSets(t, true, "provide_test_sales.port=x")
	require.Error(t, err, "a partial load still reports the problems")
	require.NotNil(t, cfg)
	checkErr := cfg.Check("provide_test_sales")
	var ce *config.Error
	require.True(t, errors.As(checkErr, &ce), "%v", checkErr)
	var loadErr *config.Error
	require.True(t, errors.As(err, &loadErr))
	out, err := cfg.Show([]string{"provide_test_sales"}, append(loadErr.Problems, ce.Problems...))
	require.NoError(t, err)
	s := string(out)
	require.Contains(t, s, `host: "" # problem: required`+"\n")
	require.Contains(t, s, "port: 0 # problem: expected an integer")
	require.Contains(t, s, "--set provide_test_sales.port=...")
	require.NotContains(t, s, "provide_test_support", "a section not asked for")
	require.Equal(t, 1, strings.Count(s, "provide_test_sales:"))
}

// showItem is an entry of a list in showSection.
type showItem struct {
	Name string `koanf:"name"`
	Role string `koanf:"role"`
}

// showSection has a list of mappings, and a value ("postgres") that is
// also the name of a later key.
type showSection struct {
	Driver   string     `koanf:"driver"`
	Items    []showItem `koanf:"items"`
	Postgres struct {
		URL string `koanf:"url"`
	} `koanf:"postgres"`
	Zone string `koanf:"zone"`
}

// A problem is marked on its own line: at an entry of a list of mappings
// (and below it), on the entry's line, not after the entry (the line of
// whatever key follows the list); at a key named like a value above it,
// on that key's line, not on its parent's.
func TestShowMarksProblemsOnTheirLine(t *testing.T) {
	reg := config.NewRegistry()
	require.NoError(t, reg.Declare("store", showSection{}))
	cfg, err := config.Load(config.Options{Environ: []string{}, Registry: reg, Sets: []string{
		"store.driver=postgres", "store.items=[{name: a, role: x}, {name: b, role: y}]", "store.zone=z",
	}})
	require.NoError(t, err)
	out, err := cfg.Show([]string{"store"}, []config.Problem{
		{Key: "store.items[0]", Msg: "token too short"},
		{Key: "store.items[1].password", Msg: "unknown key"},
		{Key: "store.postgres.url", Msg: "required"},
	})
	require.NoError(t, err)
	lines := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, _, ok := strings.Cut(strings.TrimLeft(l, " -"), ":"); ok {
			lines[k] += l
		}
	}
	require.Contains(t, lines["name"], "name: a # problem: token too short", "%s", out)
	require.Contains(t, lines["name"], "name: b # problem: unknown key", "%s", out)
	require.Contains(t, lines["url"], `url: "" # problem: required`, "%s", out)
	for _, k := range []string{"postgres", "zone", "store", "items"} {
		require.NotContains(t, lines[k], "problem", "%s", out)
	}
}
