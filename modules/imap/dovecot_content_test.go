package imap_test

import (
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/platform/task"
)

// subjects returns the subjects of the mail in box.
func subjects(t *testing.T, d *dovecottest.Server, box string) []string {
	t.Helper()
	c, err := d.Dial()
	require.NoError(t, err)
	defer c.Close()
	sel, err := c.Select(box, &goimap.SelectOptions{ReadOnly: true}).Wait()
	require.NoError(t, err)
	if sel.NumMessages == 0 {
		return nil
	}
	bufs, err := c.Fetch(goimap.SeqSet{{Start: 1, Stop: 0}}, &goimap.FetchOptions{Envelope: true}).Collect()
	require.NoError(t, err)
	var out []string
	for _, b := range bufs {
		out = append(out, b.Envelope.Subject)
	}
	return out
}

// A dead letter re-driven and then successful moves its mail out of
// Failed also when the mail's Message-ID cannot find it: none, one the
// source treats as none (8-bit), one Dovecot's HEADER search does not
// match as it is (shaped like an RFC 2047 encoded word, which Dovecot
// decodes first), a mail without any header. They stayed in Failed,
// their tasks a success. The source finds them by size and content: a
// mail of the same size and other bytes stays.
func TestDovecotRedriveOfMailFoundByContent(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	hdr := "From: a@example.com\r\nSubject: %s\r\n"
	mails := map[string]string{
		"no id one":    hdr + "\r\nbody A\r\n",
		"same size":    hdr + "\r\nbody B\r\n", // not re-driven
		"8-bit":        hdr + "Message-ID: <caf\xe9@example.com>\r\n\r\nbody\r\n",
		"encoded word": hdr + "Message-ID: <=?utf-8?q?x=ZZ?=@example.com>\r\n\r\nbody\r\n",
		"bare LF":      "From: a@example.com\nSubject: %s\n\nbody\n",
	}
	for subject, m := range mails {
		require.NoError(t, d.Save("INBOX", []byte(fmtSubject(m, subject))))
	}
	require.NoError(t, d.Save("INBOX", []byte("no header at all\r\n")))
	src := newSource(t, dovecotConfig(d, imap.ModePoll))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, len(mails)+1)
	for _, tk := range em.all() {
		complete(t, src, tk, task.DeadLettered)
	}
	require.Equal(t, len(mails)+1, dovecotCount(t, d, "Failed"))

	for _, tk := range em.all() {
		if !bytesContain(tk.Payload, "Subject: same size") {
			complete(t, src, tk, task.Succeeded)
		}
	}
	require.Equal(t, []string{"same size"}, subjects(t, d, "Failed"))
	require.Equal(t, len(mails), dovecotCount(t, d, "Processed"))
	require.Zero(t, src.Status().CompletionFailures)
}

func fmtSubject(m, subject string) string { return strings.Replace(m, "%s", subject, 1) }

func bytesContain(b []byte, s string) bool { return strings.Contains(string(b), s) }
