package imap_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// Normal completions (no suspect on the completion connection) ask for
// no control (see completion_poison.go): one found by its UID fetches
// nothing, one looked for by content fetches its candidates' envelopes
// once and their bodies once (in the INBOX, its UIDVALIDITY stale, or in
// the failed folder, re-driven); none searches the mailbox whole (the control's UID SEARCH ALL) nor asks
// for part of a body (the control's BODY.PEEK[]<0.1024>).
func TestNormalCompletionsAskForNoControl(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var mails [][]byte
	for i := 1; i <= 3; i++ {
		m := imaptest.Message(strconv.Itoa(i)+"@cost", "order", strconv.Itoa(i)+"@cost")
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
		mails = append(mails, m)
	}
	var mu sync.Mutex
	var fetches, controls []string
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(_ *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case name == "UID SEARCH" && strings.TrimSpace(rest) == "ALL",
			name == "UID FETCH" && strings.Contains(rest, "BODY.PEEK[]<"):
			controls = append(controls, line)
		case name == "UID FETCH":
			fetches = append(fetches, line)
		}
		return false
	}})
	src := newSource(t, testConfig(p.Host(), p.Port())) // not run: only its completions
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	taskOf := func(i int, v uint32) *task.Task {
		id := strconv.Itoa(i) + "@cost"
		return &task.Task{Key: id, Payload: mails[i-1], Headers: map[string]string{
			imap.HeaderMessageID: id, imap.HeaderUID: strconv.Itoa(i), imap.HeaderUIDValidity: strconv.FormatUint(uint64(v), 10),
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, o := range []task.Outcome{task.Succeeded, task.DeadLettered} {
		require.NoError(t, src.Complete(ctx, taskOf(i+1, validity), o, "test"))
		require.NoError(t, src.WaitCompletions(ctx))
	}
	mu.Lock()
	require.Empty(t, fetches, "a completion by UID fetched")
	mu.Unlock()
	// 3 looked for by content in the INBOX; 2, its dead letter
	// re-driven and successful, in the failed folder.
	require.NoError(t, src.Complete(ctx, taskOf(3, validity+1), task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx))
	require.NoError(t, src.Complete(ctx, taskOf(2, validity), task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx))

	st := src.Status()
	require.EqualValues(t, 3, st.CompletedOK, "status %+v", st)
	require.EqualValues(t, 1, st.CompletedFailed, "status %+v", st)
	require.Len(t, messages(t, srv, "Processed"), 3)
	require.Empty(t, messages(t, srv, "Failed"))
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, controls, "a control asked for by a normal completion")
	require.Len(t, fetches, 4, "one envelope and one body fetch per lookup by content: %q", fetches)
}
