package main

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSlowClientDoesNotHoldTheStop: a client trickling a request body to
// the admin server is open when SIGTERM arrives. The admin server gets a
// bounded part of the stop budget, then its connections are closed, and
// every other component still stops: the host exits 0, every start hook
// has its stop hook run (the pools drained, the backend closed), well
// within the budget. Before, Shutdown waited for the client through the
// whole budget, fx skipped every later stop hook, and the host exited 1.
// Only defaults of admin.* are used (read_timeout 10s, shutdown_timeout
// 5s): the budget, 8s, ends before the read timeout could cut the client,
// so it is the shutdown bound that holds.
func TestSlowClientDoesNotHoldTheStop(t *testing.T) {
	t.Parallel()
	const budget = 8 * time.Second
	p := startHost(t, nil, append(jsonLogs, "--set", "log.level=debug", "--set", "lifecycle.stop_timeout="+budget.String(),
		"--set", "host.apps=loadgen", "--set", "loadgen.count=100")...)
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 200 }, 10*time.Second, 20*time.Millisecond)

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "PUT /admin/v1/loglevel HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
	require.NoError(t, err)
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() { // one byte every 100ms: the body is never complete
		for {
			select {
			case <-stopTrickle:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := io.WriteString(c, " "); err != nil {
					return
				}
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the request is in its handler, reading the body

	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	code := p.wait(t, 3*budget)
	took := time.Since(start)
	out := p.output()
	require.Equal(t, 0, code, out)
	require.Less(t, took, budget, "the stop took the whole budget")
	require.NotContains(t, out, "host: stop:")
	require.Contains(t, out, "requests still open after the shutdown grace, connections closed")

	// fx's own events (at debug): every stop hook ran (there are stop
	// hooks without a start hook, as a logger's sync), none failed, and
	// the pools drained.
	var started, stopped []string
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
			Callee string `json:"callee"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Logger != "fx" {
			continue
		}
		switch ev.Msg {
		case "OnStart hook executed":
			started = append(started, ev.Callee)
		case "OnStop hook executed":
			stopped = append(stopped, ev.Callee)
		}
		require.NotContains(t, ev.Msg, "failed", line)
	}
	require.NotEmpty(t, started)
	require.GreaterOrEqual(t, len(stopped), len(started), "stop hooks skipped: started %v, stopped %v", started, stopped)
	require.Contains(t, strings.Join(stopped, " "), "StopPools", "the pools drained")
}
