package auth_test

import (
	"errors"
	"fmt"

	"github.com/plba/plba/platform/admin/auth"
)

// A user's password is kept as a bcrypt hash (what `host ctl users
// hash-password` prints, for admin.auth.users[].password_hash); a sign-in
// checks the password given against it.
func ExampleHashPassword() {
	hash, err := auth.HashPassword("correct horse battery")
	if err != nil {
		panic(err)
	}
	fmt.Println(auth.CheckPasswordHash(hash))
	fmt.Println(auth.CheckPassword(hash, "correct horse battery"), auth.CheckPassword(hash, "wrong"))

	_, err = auth.HashPassword("short")
	fmt.Println(errors.Is(err, auth.ErrPasswordTooShort))
	// Output:
	// <nil>
	// true false
	// true
}

// A machine's bearer token is kept only as its digest; a request's token
// is compared with it in constant time.
func ExampleDigestOf() {
	kept := auth.DigestOf("ci-token-0123456789")
	fmt.Println(kept.Equal(auth.DigestOf("ci-token-0123456789")), kept.Equal(auth.DigestOf("guess")))
	// Output: true false
}
