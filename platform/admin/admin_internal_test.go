package admin

import (
	"context"
	"strings"
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

// TestAuditName: the name a sign-in tried loses bytes that are not
// UTF-8 and control, format and line-separator characters, keeps at most
// maxAuditName characters (a cut marked "…"), and is "?" when nothing is
// left.
func TestAuditName(t *testing.T) {
	long := strings.Repeat("ü", maxAuditName)
	for in, want := range map[string]string{
		"alice":                     "alice",
		"\xff\xfeal\x00ice\x7f":     "alice",
		"a\tb\u200bc\u2029d\ue000e": "abcde",
		"\x00\x01\r\n":              "?",
		long:                        long,
		long + "x":                  long + "…",
		"Zoë O'Brien":               "Zoë O'Brien",
	} {
		require.Equal(t, want, auditName(in), "%q", in)
	}
}
