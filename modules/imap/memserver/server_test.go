package memserver_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/plba/plba/modules/imap/memserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T) *memserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := memserver.Start(ctx, memserver.Options{Username: "u", Password: "p"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func msg(id string) []byte {
	return []byte(fmt.Sprintf("From: a@example.com\r\nMessage-ID: <%s>\r\nSubject: s\r\n\r\nbody\r\n", id))
}

// Close right after Start (racing the accept loop's start) must still stop
// the listener: nothing may accept connections afterwards.
func TestCloseRightAfterStartStopsListening(t *testing.T) {
	t.Parallel()
	for range 20 {
		s := start(t)
		addr := s.Addr()
		require.NoError(t, s.Close())
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		require.Error(t, err, "server still accepts after Close")
	}
}

// A message appended between a client's last command and its IDLE is
// reported during the IDLE (as real servers do).
func TestIdleReportsUpdatesQueuedBeforeIdle(t *testing.T) {
	t.Parallel()
	s := start(t)
	exists := make(chan uint32, 16)
	c, err := imapclient.DialInsecure(s.Addr(), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Login("u", "p").Wait())
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	for len(exists) > 0 {
		<-exists
	}

	_, err = s.Append("INBOX", msg("1@example.com")) // client is not idling yet
	require.NoError(t, err)
	idle, err := c.Idle()
	require.NoError(t, err)
	select {
	case n := <-exists:
		require.EqualValues(t, 1, n)
	case <-time.After(2 * time.Second):
		t.Fatal("EXISTS for a mail appended before IDLE not reported during IDLE")
	}
	now, most := s.Idlers()
	require.Equal(t, 1, now, "the client idles")
	require.Equal(t, 1, most)
	// And one appended during IDLE.
	_, err = s.Append("INBOX", msg("2@example.com"))
	require.NoError(t, err)
	select {
	case n := <-exists:
		require.EqualValues(t, 2, n)
	case <-time.After(2 * time.Second):
		t.Fatal("EXISTS for a mail appended during IDLE not reported")
	}
	require.NoError(t, idle.Close())
	require.NoError(t, idle.Wait())
	require.Eventually(t, func() bool { now, _ := s.Idlers(); return now == 0 }, 2*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := s.Messages(ctx, "INBOX")
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, "2@example.com", msgs[1].MessageID)
}
