package mailorder_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform"
)

// BenchmarkMailsToOrders measures the whole way from the embedded IMAP
// server to committed orders: 1,000 mails with one CSV attachment each sit
// in the INBOX; one iteration starts the host (platform with the memory
// backend, the mailorder app on SQLite) and ends when every mail's order
// is committed and the mail moved to Processed. It reports mails/s. Run it
// with -benchtime 1x: one iteration is 1,000 mails.
func BenchmarkMailsToOrders(b *testing.B) {
	const mails = 1000
	for _, conc := range []int{4, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				srv := imaptest.NewServer(b, memserver.Options{})
				for i := 0; i < mails; i++ {
					_, err := srv.Append("INBOX", sample.OrderMail(i))
					require.NoError(b, err)
				}
				cfg := load(b, mailboxYAML(b, srv), fmt.Sprintf("workers.mailorder.concurrency=%d", conc),
					"mailorder.mailbox.batch_size=100")
				var a *mailorder.App
				app := fxtest.New(b, platform.Module(cfg, platform.Info{}), mailorder.Module, fx.Populate(&a), fx.NopLogger)

				began := time.Now()
				b.StartTimer()
				app.RequireStart()
				for {
					st := a.Source().Status()
					if st.CompletedOK+st.CompletedFailed >= mails {
						break
					}
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				total += time.Since(began)

				n, err := a.Store().Count(context.Background())
				require.NoError(b, err)
				require.Equal(b, mails, n)
				require.EqualValues(b, mails, a.Source().Status().CompletedOK)
				app.RequireStop()
				require.NoError(b, srv.Close())
			}
			b.ReportMetric(float64(mails*b.N)/total.Seconds(), "mails/s")
		})
	}
}
