package netfault_test

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
)

// upstream accepts one connection and hands it over.
func upstream(t *testing.T) (addr string, conns <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	ch := make(chan net.Conn, 1)
	go func() { // ends when the listener closes (cleanup)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { _ = c.Close() })
		ch <- c
	}()
	return ln.Addr().String(), ch
}

// Frozen, the proxy holds what the client sends (the connection stays
// open); frozen again while it holds it, and thawed, it delivers it.
func TestFreezeHoldsAndThawDelivers(t *testing.T) {
	t.Parallel()
	addr, conns := upstream(t)
	p := netfault.NewProxy(t, addr)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	up := <-conns

	_, err = c.Write([]byte("one"))
	require.NoError(t, err)
	buf := make([]byte, 3)
	require.NoError(t, up.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(up, buf)
	require.NoError(t, err)
	require.Equal(t, "one", string(buf))

	p.Freeze()
	_, err = c.Write([]byte("two"))
	require.NoError(t, err, "a frozen proxy keeps the connection open")
	require.NoError(t, up.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err = up.Read(buf)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "nothing gets through while frozen: %v", err)

	p.Freeze() // again, while "two" waits at the gate
	p.Thaw()
	require.NoError(t, up.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(up, buf)
	require.NoError(t, err, "thawed, the proxy delivers what it held")
	require.Equal(t, "two", string(buf))
}

// A server that closes its end is seen to close by the client (and the
// other way round): the proxy passes the close on instead of leaving the
// client with an open connection that never answers again.
func TestCloseIsPassedOn(t *testing.T) {
	t.Parallel()
	for _, closer := range []string{"server", "client"} {
		t.Run(closer, func(t *testing.T) {
			t.Parallel()
			addr, conns := upstream(t)
			p := netfault.NewProxy(t, addr)
			c, err := net.Dial("tcp", p.Addr())
			require.NoError(t, err)
			defer c.Close()
			up := <-conns
			closing, other := up, c
			if closer == "client" {
				closing, other = c, up
			}
			_, err = closing.Write([]byte("bye"))
			require.NoError(t, err)
			require.NoError(t, closing.Close())
			require.NoError(t, other.SetReadDeadline(time.Now().Add(5*time.Second)))
			got, err := io.ReadAll(other)
			require.NoError(t, err, "the other end reads to the end (EOF)")
			require.Equal(t, "bye", string(got))
		})
	}
}
