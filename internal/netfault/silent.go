package netfault

import (
	"net"
	"sync"
	"testing"
)

// Silent listens on 127.0.0.1 at a free port, accepts connections and
// never answers them: a server that hangs every client at its connect. It
// returns the address and a channel closed at the first connection; the
// listener and the connections are closed when tb ends.
func Silent(tb testing.TB) (addr string, accepted <-chan struct{}) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("netfault: listen: %v", err)
	}
	first := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	tb.Cleanup(func() { _ = ln.Close(); <-done })
	go func() { // owned: ends when the cleanup closes the listener
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			once.Do(func() { close(first) })
		}
	}()
	return ln.Addr().String(), first
}
