package host

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlTokenAndExitStatuses: the token from --token-file (over
// PLBA_CTL_TOKEN) is sent as a bearer token; 401 and 403 exit 3, another
// error 1; the audit page prints as a table, its last page with how many
// entries the server's ring dropped.
func TestCtlTokenAndExitStatuses(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch r.Header.Get("Authorization") {
		case "Bearer viewer-token":
			if r.Method != http.MethodGet {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"error":"admin: operator role required"}`))
				return
			}
			if r.URL.Path == "/admin/v1/audit" {
				_, _ = w.Write([]byte(`{"entries":[{"id":1,"time":"2026-01-02T03:04:05Z","identity":"ops","role":"operator","action":"pool.pause","target":"pool/default","result":"ok","remote":"127.0.0.1:5"}],"evicted":7}`))
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"boom"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"admin: credentials required"}`))
		}
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("viewer-token\n"), 0o600))
	run := func(env string, args ...string) (int, string, string) {
		t.Setenv(CtlTokenEnv, env)
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, _, stderr := run("", "queues")
	require.Equal(t, ExitDenied, code, stderr)
	require.Contains(t, stderr, "no token")
	code, _, _ = run("wrong", "queues")
	require.Equal(t, ExitDenied, code)
	code, _, stderr = run("wrong", "pool", "pause", "default", "--token-file", tokenFile)
	require.Equal(t, ExitDenied, code, "403: %s", stderr)
	require.Equal(t, "Bearer viewer-token", gotAuth, "--token-file wins over the environment")
	require.Contains(t, stderr, "operator role required")
	code, _, stderr = run("viewer-token", "queues")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "boom")
	code, stdout, _ := run("viewer-token", "audit")
	require.Equal(t, ExitOK, code)
	require.Contains(t, stdout, "pool.pause")
	require.Contains(t, stdout, "ops")
	require.Contains(t, stdout, "7 older entries dropped", "the end of the ring is not the end of the audit")
	code, _, _ = run("viewer-token", "audit", "-o", "yaml")
	require.Equal(t, ExitUsage, code)
}

// What ctl prints comes from outside: a dead letter's payload is a mail
// as its sender wrote it, its reason and key carry the mail's headers.
// Control characters in them (a terminal's escape sequences: set the
// title, write the clipboard, clear the screen) and bidirectional
// overrides are printed visibly escaped, never sent to the operator's
// terminal, and a newline inside a cell cannot forge a row.
func TestCtlPrintsNoControlCharactersFromTheServer(t *testing.T) {
	const evil = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\u202e"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/admin/v1/queues/mail/dead":
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{{
				"id": "d1", "kind": "mail" + evil, "key": "imap:INBOX:<x" + evil + "@y>", "reason": "mail <x" + evil + "@y> not handled\nd2  forged  row",
				"at": "2026-01-02T03:04:05Z", "attempts": 1, "payload_size": 10,
			}}})
		case "/admin/v1/queues/mail/dead/d1":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id": "d1", "kind": "mail", "key": "k" + evil + "\nreason  forged", "reason": "r" + evil, "at": "2026-01-02T03:04:05Z",
				"headers": map[string]string{"plba-imap-message-id": "<x" + evil + "@y>"},
				"payload": "Subject: hi\r\n\r\nbody" + evil + "\nline two\tend", "payload_encoding": "text", "payload_size": 40,
			})
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no such" + evil})
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	clean := func(what, s string) {
		t.Helper()
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "\r"} {
			require.NotContains(t, s, bad, "%s printed %q raw:\n%s", what, bad, s)
		}
	}

	code, out, errs := run("dlq", "list", "mail")
	require.Equal(t, ExitOK, code, errs)
	clean("dlq list", out)
	require.Contains(t, out, `\x1b`, "shown, escaped")
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2, "a header and one row, no forged one:\n%s", out)

	code, out, errs = run("dlq", "show", "mail", "d1")
	require.Equal(t, ExitOK, code, errs)
	clean("dlq show", out)
	require.Contains(t, out, "\nline two\tend", "the payload keeps its lines and tabs:\n%s", out)
	reasons := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "reason") {
			reasons++
		}
	}
	require.Equal(t, 1, reasons, "a newline in the key forged no reason row:\n%s", out)

	code, _, errs = run("dlq", "show", "mail", "nope")
	require.Equal(t, ExitFailure, code)
	clean("an error", errs)
}

// `ctl source list` shows each source's state, as `ctl pool list` does a
// pool's: a source that failed (its crash-loop limit passed) reads
// "failed", not as a running one with an error beside it.
func TestCtlSourceListShowsTheState(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"sources": []map[string]any{
			{"name": "mailbox", "state": "failed", "emitted": 3, "errors": 6, "restarts": 5, "paused": false,
				"last_error": "imap: authentication failed", "last_poll": "2026-01-02T03:04:05Z"},
			{"name": "tick", "state": "running", "emitted": 7, "errors": 0, "restarts": 0, "paused": false},
		}})
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "")
	var out, errb bytes.Buffer
	code := execute([]string{"ctl", "--url", srv.URL, "source", "list"}, &out, &errb)
	require.Equal(t, ExitOK, code, errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	require.Equal(t, []string{"SOURCE", "STATE"}, strings.Fields(lines[0])[:2], out.String())
	require.Equal(t, []string{"mailbox", "failed"}, strings.Fields(lines[1])[:2], out.String())
	require.Equal(t, []string{"tick", "running"}, strings.Fields(lines[2])[:2], out.String())
	require.Contains(t, lines[1], "2026-01-02T03:04:05Z", "the last poll")
}

// TestCtlSaysAnActionWithoutAnswerMayBeDone: a state-changing call that
// reached the server and got no answer in time may have been done: ctl
// says so (and where to look), rather than a bare failure the operator
// would take for "not done". A call that could not connect was not sent,
// and a read is no action: neither says it.
func TestCtlSaysAnActionWithoutAnswerMayBeDone(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // works past the client's timeout
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	t.Setenv(CtlTokenEnv, "operator-token")
	run := func(url string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", url, "--timeout", "200ms"}, args...), &out, &errb)
		return code, errb.String()
	}
	code, stderr := run(srv.URL, "pool", "pause", "default")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "the server may have done it or not", stderr)
	require.Contains(t, stderr, "host ctl audit")

	code, stderr = run(srv.URL, "queues")
	require.Equal(t, ExitFailure, code)
	require.NotContains(t, stderr, "may have done it", "a read")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	code, stderr = run(closed, "pool", "pause", "default")
	require.Equal(t, ExitFailure, code)
	require.NotContains(t, stderr, "may have done it", "never sent: %s", stderr)
}
