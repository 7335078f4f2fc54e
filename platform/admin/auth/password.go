// Package auth holds the admin server's credential primitives: password
// hashes for users (bcrypt) and token digests for machines, compared in
// constant time. The admin server (platform/admin) builds on it; `host ctl
// users hash-password` calls HashPassword.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// PasswordCost is the bcrypt cost HashPassword uses (2^12 rounds: about
// a quarter of a second on a current core, which is what a sign-in
// costs the server and a guess costs an attacker holding the hash).
const PasswordCost = 12

// MinPasswordLength is the shortest password HashPassword accepts.
const MinPasswordLength = 8

// ErrPasswordTooShort and ErrPasswordTooLong are HashPassword's refusals.
var (
	ErrPasswordTooShort = fmt.Errorf("auth: password shorter than %d characters", MinPasswordLength)
	// ErrPasswordTooLong: bcrypt reads at most 72 bytes; a longer
	// password would be cut silently, so it is refused.
	ErrPasswordTooLong = errors.New("auth: password longer than 72 bytes")
)

// HashPassword returns the bcrypt hash of pw, for admin.auth.users'
// password_hash ("$2a$12$..."). pw must have at least MinPasswordLength
// characters and at most 72 bytes.
func HashPassword(pw string) (string, error) {
	if len([]rune(pw)) < MinPasswordLength {
		return "", ErrPasswordTooShort
	}
	if len(pw) > 72 {
		return "", ErrPasswordTooLong
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), PasswordCost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// CheckPasswordHash reports whether hash is a bcrypt hash CheckPassword
// can use, and why not.
func CheckPasswordHash(hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("not a bcrypt hash (make one with `host ctl users hash-password`): %w", err)
	}
	return nil
}

// CheckPassword reports whether pw matches hash. It takes the hash's
// cost in time whatever the answer.
func CheckPassword(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// Digest is the SHA-256 of a token: what the server keeps instead of
// the token.
type Digest [sha256.Size]byte

// DigestOf returns the digest of token.
func DigestOf(token string) Digest { return sha256.Sum256([]byte(token)) }

// Equal compares two digests in constant time.
func (d Digest) Equal(o Digest) bool { return subtle.ConstantTimeCompare(d[:], o[:]) == 1 }

// Decoy is a hash no password matches, of a given cost: checking an
// unknown user's password against it takes as long as checking a known
// user's, so the time of a refusal does not tell which names exist.
// Making it takes the time of one check: Prepare makes it ahead (at
// start), so that the first unknown name is not refused in twice a known
// one's time; a decoy not prepared is made by its first Check.
type Decoy struct {
	cost  int
	once  sync.Once
	hash  string
	ready atomic.Bool
}

// NewDecoy returns a decoy of the cost of hash (PasswordCost when hash
// is not a bcrypt hash).
func NewDecoy(hash string) *Decoy {
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		cost = PasswordCost
	}
	return &Decoy{cost: cost}
}

// Cost is the bcrypt cost of the decoy's checks.
func (d *Decoy) Cost() int { return d.cost }

// Prepare makes the decoy's hash, once (a second call returns at once).
func (d *Decoy) Prepare() {
	d.once.Do(func() {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		h, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(b)), d.cost)
		if err == nil {
			d.hash = string(h)
		}
		d.ready.Store(true)
	})
}

// Ready reports whether the decoy's hash is made (Prepare).
func (d *Decoy) Ready() bool { return d.ready.Load() }

// Check spends the time of one CheckPassword and reports false.
func (d *Decoy) Check(pw string) bool {
	d.Prepare()
	_ = CheckPassword(d.hash, pw)
	return false
}
