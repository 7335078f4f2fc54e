package mailorder_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/storetest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// Valid order mails whose headers are hostile (a Message-ID of 8000
// bytes, 8-bit and control bytes in the headers, a bidirectional
// override in a file name) go the whole way on PostgreSQL: each becomes
// its orders once, moves to Processed, and nothing is dead-lettered.
func TestHostileOrderMailsEndToEndOnPostgres(t *testing.T) {
	t.Parallel()
	url := os.Getenv("PLBA_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("PLBA_TEST_POSTGRES_URL not set")
	}
	schema := fmt.Sprintf("mailorder_hostile_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer c.Close(ctx)
		_, err = c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
		require.NoError(t, err)
	})
	srv := imaptest.NewServer(t, memserver.Options{})
	bidi := "From: buyer@example.com\r\nMessage-ID: <bidi@example.com>\r\n" +
		"Content-Type: text/csv; name=\"order\u202evsc.exe\"\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n"
	for _, m := range [][]byte{storetest.LongMessageIDMail(8000), []byte(storetest.HostileMail), []byte(bidi)} {
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	h := start(t, mailboxYAML(t, srv), "mailorder.store.driver=postgres",
		"mailorder.store.postgres.url="+url, "mailorder.store.postgres.schema="+schema)
	waitCompleted(t, h.app, 3, 60*time.Second)
	count, err := h.app.Store().Count(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, count, "1 + 2 + 1 orders")
	require.Len(t, folder(t, srv, "Processed"), 3)
	require.Empty(t, folder(t, srv, "Failed"))
	st := getStatus(t, h)
	require.Empty(t, st.FailedMails)
	require.Equal(t, uint64(3), h.app.Source().Status().CompletedOK)
}
