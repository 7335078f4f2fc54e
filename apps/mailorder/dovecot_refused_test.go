package mailorder_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap/dovecottest"
)

// maildirFiles is the mail files of box in d's maildir (Dovecot dies on
// a fetch of a damaged one, so its folder is counted on disk).
func maildirFiles(t *testing.T, d *dovecottest.Server, box string) []string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(d.LogPath()), "mail", dovecottest.Username)
	if box != "INBOX" {
		dir = filepath.Join(dir, "."+box)
	}
	var out []string
	for _, sub := range []string{"new", "cur"} {
		files, err := filepath.Glob(filepath.Join(dir, sub, "*"))
		require.NoError(t, err)
		out = append(out, files...)
	}
	return out
}

// An order mail Dovecot's imap process dies on whenever it is fetched
// (its maildir file cut to a third: "Cached message size larger than
// expected") is, after a few sessions, a dead letter listed in
// failed_mails with its UID and the reason (the connection ends whenever
// it is asked for, how many sessions), and its file moves to Failed; the
// other mails are stored or dead-lettered as usual. It was set aside,
// left in the INBOX where the dead letters did not show it.
func TestDovecotMailTheServerDiesOnIsADeadLetter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the host binary")
	}
	t.Parallel()
	d := dovecottest.Start(t)
	const n = 6
	deliverSamples(t, d, 0, n)
	poison := -1
	invalid := 0
	for i := range n {
		if !sample.VariantOf(i).Valid() {
			invalid++
		} else if poison < 0 {
			poison = i
		}
	}
	require.GreaterOrEqual(t, poison, 0)
	cut := false
	for _, f := range maildirFiles(t, d, "INBOX") {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.Contains(string(b), "<"+sample.MessageID(poison)+">") {
			require.NoError(t, os.WriteFile(f, b[:len(b)/3], 0o666))
			cut = true
		}
	}
	require.True(t, cut)

	// Given up after three sessions over at least refusal_span (1m by
	// default): 2s, the default reconnect.max, keeps the test short.
	h := newDovecotHost(t, d, "    refusal_span: 2s\n")
	p := h.run(t)
	require.Eventually(t, func() bool {
		// A MOVE links the file into its folder before it expunges
		// it from the INBOX: wait for both.
		return len(maildirFiles(t, d, "Processed")) == n-invalid-1 && len(maildirFiles(t, d, "Failed")) == invalid+1 &&
			len(maildirFiles(t, d, "INBOX")) == 0
	}, 60*time.Second, 50*time.Millisecond, "every mail settled: %s", p.out.String())

	st := h.status(t)
	require.EqualValues(t, 1, st.Mailbox.Refused)
	var reasons []string
	for _, f := range st.FailedMails {
		if strings.Contains(f.Reason, "ends the connection whenever it is asked for the message") {
			require.NotEmpty(t, f.UID, "the dead letter names the mail's place")
			reasons = append(reasons, f.Reason)
		}
	}
	require.Len(t, reasons, 1, "the mail the server dies on is a dead letter with its reason: %+v", st.FailedMails)
	require.Contains(t, reasons[0], "consecutive sessions ended")
	require.Len(t, st.FailedMails, invalid+1)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.out.String())
}
