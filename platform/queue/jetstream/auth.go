package jetstream

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrBadCredentials is returned by Start when the configured NKey seed or
// credentials cannot be parsed.
var ErrBadCredentials = errors.New("jetstream: bad credentials")

// nkeyOption authenticates with a user NKey seed given as text.
func nkeyOption(seed []byte) (nats.Option, error) {
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return nil, fmt.Errorf("%w: nkey_seed: %w", ErrBadCredentials, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: nkey_seed: %w", ErrBadCredentials, err)
	}
	if !strings.HasPrefix(pub, "U") {
		return nil, fmt.Errorf("%w: nkey_seed is not a user seed", ErrBadCredentials)
	}
	return nats.Nkey(pub, kp.Sign), nil
}

// credsOption authenticates with the content of a JWT credentials file.
func credsOption(creds []byte) (nats.Option, error) {
	jwt, err := nkeys.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("%w: creds: %w", ErrBadCredentials, err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("%w: creds: %w", ErrBadCredentials, err)
	}
	return nats.UserJWT(
		func() (string, error) { return jwt, nil },
		kp.Sign,
	), nil
}
