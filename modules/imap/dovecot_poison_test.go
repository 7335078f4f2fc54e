package imap_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
)

// A mail Dovecot's imap process dies on whenever it is fetched (its
// maildir file shorter than the size its name records: "Cached message
// size larger than expected", then a panic): the mail is set aside,
// left in the INBOX and counted, and the mail around it flows. Every
// session ended on the batch that held it, and nothing of the mailbox
// was emitted, for good.
func TestDovecotMailTheServerDiesOnIsSetAside(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	for _, id := range []string{"1@poison", "2@poison", "3@poison"} {
		require.NoError(t, d.Save("INBOX", imaptest.Message(id, "order", strings.Repeat(id+" ", 20))))
	}
	files, err := filepath.Glob(filepath.Join(filepath.Dir(d.LogPath()), "mail", dovecottest.Username, "new", "*"))
	require.NoError(t, err)
	var poison string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.Contains(string(b), "<2@poison>") {
			poison = f
			require.NoError(t, os.WriteFile(f, b[:len(b)/3], 0o666))
		}
	}
	require.NotEmpty(t, poison)

	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Reconnect = imap.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 2 }, 30*time.Second, 50*time.Millisecond,
		"the other mail is emitted and moved")
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"1@poison", "3@poison"}, ids)
	st := src.Status()
	require.EqualValues(t, 1, st.Refused, "the mail the server dies on is set aside")
	require.Equal(t, 2, em.count())
	// Dovecot moved it from new/ to cur/, under the same base name.
	base := strings.SplitN(filepath.Base(poison), ",", 2)[0]
	left, err := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(poison)), "*", base+",*"))
	require.NoError(t, err)
	require.Len(t, left, 1, "the mail stays in the INBOX")
}
