package imap

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReconnectDelayThatCannotBeJitteredIsRefused: a reconnect delay is
// drawn up to 50% above its step, and one so large that the draw passed
// the largest time.Duration wrapped round to a negative delay: with
// reconnect.initial and reconnect.max 2562047h, about half the delays
// were negative and the source reconnected to the server at once, again
// and again. Such delays are refused, naming the key and the bound.
func TestReconnectDelayThatCannotBeJitteredIsRefused(t *testing.T) {
	t.Parallel()
	const huge = 2562047 * time.Hour
	c := Config{Host: "imap.example.com", Username: "u", Password: "p", Kind: "mail", Reconnect: Backoff{Initial: huge, Max: huge}}
	err := c.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "reconnect.max: must be at most "+MaxReconnectDelay.String())

	c.Reconnect = Backoff{Initial: MaxReconnectDelay, Max: MaxReconnectDelay}
	require.NoError(t, c.Validate())
	e := newBackoff(c.Reconnect)
	for range 200 { // the draw is random: half of them overflowed
		require.Greater(t, next(e), time.Hour)
	}
}
