package imap_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// A mail with nothing in it (0 bytes, RFC822.SIZE 0) is a mail: emitted
// with its empty payload, not refused nor held (see returnedEmpty, for
// a body returned empty while the size says otherwise), and its
// completion moves it as any other's.
func TestDovecotEmptyMailIsEmitted(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Save("INBOX", []byte{}))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@empty", "order", "2@empty")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.BatchSize = 1 // the empty mail fetched alone
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	var empty *task.Task
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), tk.Key)
		if tk.Header(imap.HeaderUID) == "1" {
			empty = tk
		}
	}
	require.NotNil(t, empty)
	require.Empty(t, empty.Payload, "the empty mail")
	require.Equal(t, "0", empty.Header(imap.HeaderSize))
	complete(t, src, empty, task.Succeeded)
	ids, err := d.MessageIDs("INBOX")
	require.NoError(t, err)
	require.Equal(t, []string{"2@empty"}, ids)
	require.Equal(t, 1, dovecotCount(t, d, "Processed"))
	st := src.Status()
	require.Zero(t, st.Refused)
	require.EqualValues(t, 1, st.CompletedOK)
}
