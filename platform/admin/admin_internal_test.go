package admin

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNewServerBoundsHeaderReads: a server built without fx from a bare
// Config still bounds header and body reads, writes, idle connections and
// its shutdown (a zero timeout takes the default),
// and a Config without an address is refused instead of listening on
// every interface.
func TestNewServerBoundsHeaderReads(t *testing.T) {
	s, err := NewServer(Config{Listen: "127.0.0.1:0"}, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	require.Equal(t, 5*time.Second, s.srv.ReadHeaderTimeout)
	require.Equal(t, DefaultReadTimeout, s.srv.ReadTimeout)
	require.Equal(t, DefaultWriteTimeout, s.srv.WriteTimeout)
	require.Equal(t, DefaultIdleTimeout, s.srv.IdleTimeout)
	require.Equal(t, DefaultShutdownTimeout, s.cfg.ShutdownTimeout)

	_, err = NewServer(Config{}, nil, StatusInfo{}, nil, nil, nil)
	require.ErrorContains(t, err, "listen")
}
