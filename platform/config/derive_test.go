package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// derivedTest is a section one of whose defaults follows another
// section's setting, as the admin audit stream follows the JetStream
// stream prefix.
type derivedTest struct {
	Prefix string `koanf:"prefix"`
}

type followerTest struct {
	Name string `koanf:"name"`
}

var (
	_ = config.Declare("derive_test_base", derivedTest{Prefix: "BASE"})
	_ = config.Declare("derive_test_follower", followerTest{}).Derived(func(f followerTest, c *config.Config) followerTest {
		var b derivedTest
		if f.Name == "" && c.Decode("derive_test_base", &b) == nil {
			f.Name = b.Prefix + "_FOLLOWS"
		}
		return f
	})
)

// A derived default is filled in from the section it follows, in what
// Decode gives (the graph) and in what Show and YAML print (`host config
// show`, the effective configuration): not left empty where the name
// used is another. A value set wins.
func TestDerivedDefaultShown(t *testing.T) {
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{nil, "BASE_FOLLOWS"},
		{[]string{"derive_test_base.prefix=SHOP"}, "SHOP_FOLLOWS"},
		{[]string{"derive_test_base.prefix=SHOP", "derive_test_follower.name=MINE"}, "MINE"},
	} {
		cfg, err := loadSets(t, false, tc.sets...)
		require.NoError(t, err)
		var f followerTest
		require.NoError(t, cfg.Decode("derive_test_follower", &f))
		require.Equal(t, tc.want, f.Name, "%v", tc.sets)
		out, err := cfg.Show([]string{"derive_test_follower"}, nil)
		require.NoError(t, err)
		require.Contains(t, string(out), "name: "+tc.want+"\n", "%v", tc.sets)
		require.Contains(t, string(cfg.YAML()), "name: "+tc.want+"\n", "%v", tc.sets)
	}
	require.Error(t, config.NewRegistry().Derive("none", func(_ *config.Config, v any) any { return v }), "an undeclared section")
}
