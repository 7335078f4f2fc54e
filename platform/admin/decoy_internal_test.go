package admin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

// TestDemoDecoyTakesTheUsersCost: with the demo user (a hash at bcrypt's
// lowest cost) beside configured users, an unknown name's password is
// checked at the configured users' cost: at the demo's, a refusal of an
// unknown name came back many times sooner than a known one's and told
// which names exist.
func TestDemoDecoyTakesTheUsersCost(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("correct-horse-battery"), bcrypt.MinCost+2)
	require.NoError(t, err)
	c := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{Demo: true, Users: []UserConfig{{Name: "olive", Role: RoleOperator, PasswordHash: string(h)}}}}.WithDefaults()
	require.NoError(t, c.Validate())
	a, err := newAuthenticator(c, nil)
	require.NoError(t, err)
	require.Equal(t, bcrypt.MinCost+2, a.decoy.Cost())

	c.Auth.Users = nil
	a, err = newAuthenticator(c, nil)
	require.NoError(t, err)
	require.Equal(t, bcrypt.MinCost, a.decoy.Cost(), "the demo user alone: its cost")
}

// TestUsersOfDifferentCostsAreWarnedOf: an unknown name is checked at
// the first user's cost; a user whose hash has another cost is refused
// in another time, which tells that the name exists. The start says so
// at warn, naming the users by cost; users of one cost get no warning.
func TestUsersOfDifferentCostsAreWarnedOf(t *testing.T) {
	t.Parallel()
	hash := func(cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte("correct-horse-battery"), cost)
		require.NoError(t, err)
		return string(h)
	}
	for _, c := range []struct {
		name  string
		costs []int
		warn  bool
	}{{"one cost", []int{bcrypt.MinCost, bcrypt.MinCost}, false}, {"two costs", []int{bcrypt.MinCost, bcrypt.MinCost + 2}, true}} {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			cfg := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{Users: []UserConfig{
				{Name: "olive", Role: RoleOperator, PasswordHash: hash(c.costs[0])},
				{Name: "victor", Role: RoleViewer, PasswordHash: hash(c.costs[1])},
			}}}
			s, err := NewServer(cfg, zap.New(core), StatusInfo{}, nil, nil, nil)
			require.NoError(t, err)
			require.NoError(t, s.Start(context.Background()))
			require.NoError(t, s.Stop(context.Background()))
			warned := logs.FilterMessageSnippet("different bcrypt costs").FilterLevelExact(zapcore.WarnLevel).All()
			if !c.warn {
				require.Empty(t, warned)
				return
			}
			require.Len(t, warned, 1)
			require.Equal(t, map[string][]string{"4": {"olive"}, "6": {"victor"}}, warned[0].ContextMap()["users_by_cost"])
		})
	}
}

// TestDecoyIsMadeAtStart: the decoy hash is made when the server starts,
// not by the first sign-in of an unknown name, which then took the time
// of two password checks (making the hash, checking it) against a known
// name's one and told that the name does not exist.
func TestDecoyIsMadeAtStart(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("correct-horse-battery"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{Users: []UserConfig{{Name: "olive", Role: RoleOperator, PasswordHash: string(h)}}}}
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	require.False(t, s.auth.decoy.Ready(), "a constructor computes nothing")
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	require.True(t, s.auth.decoy.Ready(), "the decoy is made at start")
}
