package admin

import (
	"testing"

	"github.com/stretchr/testify/require"
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
	c := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{Demo: true, Users: []UserConfig{{Name: "olive", Role: RoleOperator, PasswordHash: string(h)}}}}.withDefaults()
	require.NoError(t, c.Validate())
	a, err := newAuthenticator(c, nil)
	require.NoError(t, err)
	require.Equal(t, bcrypt.MinCost+2, a.decoy.Cost())

	c.Auth.Users = nil
	a, err = newAuthenticator(c, nil)
	require.NoError(t, err)
	require.Equal(t, bcrypt.MinCost, a.decoy.Cost(), "the demo user alone: its cost")
}
