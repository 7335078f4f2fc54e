package imap_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// maildirOf is the directory of box's maildir.
func maildirOf(d *dovecottest.Server, box string) string {
	dir := filepath.Join(filepath.Dir(d.LogPath()), "mail", dovecottest.Username)
	if box != "INBOX" {
		dir = filepath.Join(dir, "."+box)
	}
	return dir
}

// truncateMail cuts the maildir file of box holding marker to a third:
// Dovecot's imap process dies whenever its body is fetched.
func truncateMail(t *testing.T, d *dovecottest.Server, box, marker string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(maildirOf(d, box), "*", "*"))
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), marker) {
			continue
		}
		require.NoError(t, os.WriteFile(f, b[:len(b)/3], 0o666))
		return
	}
	t.Fatalf("no mail of %q holds %q", box, marker)
}

// A completion that looks for its mail by size and content (no
// Message-ID, the mailbox created again) among candidates one of which
// Dovecot's imap process dies on: the candidate is fetched alone, set
// aside once fetching it alone has ended the connection in
// RefusedSessionsBeforeSetAside sessions, and the completion, and the
// one queued after it, are applied. The batch was retried forever, and
// every later completion waited behind it.
func TestDovecotMailTheServerDiesOnDoesNotStallCompletions(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	body := strings.Repeat("no id ", 20)
	mail := imaptest.Message("", "order", body)
	require.NoError(t, d.Append("Orders", mail))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Mailbox, cfg.Reconcile = "Orders", time.Hour
	cfg.Reconnect = imap.Backoff{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond}
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)

	// The poison mail has the same size, and no Message-ID either.
	poison := imaptest.Message("", "order", strings.Repeat("poison", 20))
	require.Len(t, poison, len(mail))
	deleteAndCreate(t, d, "Orders", poison, mail, imaptest.Message("later@poison", "order", "later"))
	truncateMail(t, d, "Orders", "poisonpoison")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, em.all()[0], task.Succeeded, ""))
	// A later completion (a task of another source, its mail in the new
	// mailbox) waits behind the first.
	later := em.all()[0].Clone()
	later.Key = "later"
	later.Payload = imaptest.Message("later@poison", "order", "later")
	later.Headers = map[string]string{imap.HeaderMessageID: "later@poison", imap.HeaderUID: "1", imap.HeaderUIDValidity: "1"}
	require.NoError(t, src.Complete(ctx, later, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())

	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"", "later@poison"}, ids)
	// Dovecot dies on an envelope fetch of it too: the maildir tells.
	left, err := filepath.Glob(filepath.Join(maildirOf(d, "Orders"), "*", "*"))
	require.NoError(t, err)
	require.Len(t, left, 1, "the mail the server dies on stays")
	require.EqualValues(t, 2, src.Status().CompletedOK)
}
