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
