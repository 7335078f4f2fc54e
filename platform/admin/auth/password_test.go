package auth_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin/auth"
)

func TestHashPassword(t *testing.T) {
	t.Parallel()
	h, err := auth.HashPassword("correct horse")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$2a$12$"), h)
	require.NoError(t, auth.CheckPasswordHash(h))
	require.True(t, auth.CheckPassword(h, "correct horse"))
	require.False(t, auth.CheckPassword(h, "correct horsE"))
	require.False(t, auth.CheckPassword("garbage", "correct horse"))
	require.Error(t, auth.CheckPasswordHash("garbage"))

	_, err = auth.HashPassword("short")
	require.ErrorIs(t, err, auth.ErrPasswordTooShort)
	_, err = auth.HashPassword(strings.Repeat("x", 73))
	require.ErrorIs(t, err, auth.ErrPasswordTooLong)
}

func TestDigest(t *testing.T) {
	t.Parallel()
	require.True(t, auth.DigestOf("abc").Equal(auth.DigestOf("abc")))
	require.False(t, auth.DigestOf("abc").Equal(auth.DigestOf("abd")))
}

// A decoy is made by Prepare, once, or else by its first Check; it never
// matches.
func TestDecoyPrepare(t *testing.T) {
	t.Parallel()
	d := auth.NewDecoy("not a hash")
	require.Equal(t, auth.PasswordCost, d.Cost())
	d = auth.NewDecoy("$2a$04$C6UzMDM.H6dfI/f/IKxGhuE4gFWhVsmHdVJ4sMqBhIzM7C3pp7rQ2")
	require.False(t, d.Ready())
	d.Prepare()
	require.True(t, d.Ready())
	d.Prepare()
	require.False(t, d.Check(""))
	lazy := auth.NewDecoy("$2a$04$C6UzMDM.H6dfI/f/IKxGhuE4gFWhVsmHdVJ4sMqBhIzM7C3pp7rQ2")
	require.False(t, lazy.Check("x"))
	require.True(t, lazy.Ready())
}
