package mailorder_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform"
)

// shippedYAML is configs/mailorder.yaml's values (JetStream embedded,
// concurrency 4, IDLE, batch 50, SQLite) pointed at a local server.
func shippedYAML(b testing.TB, host string, port int, user, pass string) string {
	dir := b.TempDir()
	return fmt.Sprintf(`
host:
  apps: [mailorder]
queue:
  backend: jetstream
  jetstream:
    embedded:
      store_dir: %s
workers:
  mailorder:
    concurrency: 4
    max_attempts: 5
    task_timeout: 2m
mailorder:
  queue: mailorder
  mailbox:
    host: %s
    port: %d
    tls: none
    username: %s
    password: %s
    mailbox: INBOX
    mode: idle
    poll_interval: 1m
    idle_renew: 25m
    reconcile: 2m
    batch_size: 50
    max_message_size: 7340032
    on_success: {seen: true, move_to: Processed}
    on_failure: {move_to: Failed}
  store:
    driver: sqlite
    sqlite:
      path: %s
  limits:
    max_attachment_bytes: 5242880
    max_lines_per_order: 500
`, filepath.Join(dir, "nats"), host, port, user, pass, filepath.Join(dir, "data", "orders.db"))
}

// intakeServer is the IMAP server under the benchmark.
type intakeServer struct {
	host, user, pass string
	port             int
	deliver          func(msgs ...[]byte) error // bulk
	deliverOne       func(msg []byte) error     // as a delivery agent
}

func dovecotIntake(b testing.TB) intakeServer {
	d := dovecottest.Start(b)
	return intakeServer{host: d.Host(), port: d.Port(), user: dovecottest.Username, pass: dovecottest.Password,
		deliver:    func(msgs ...[]byte) error { return d.Append("INBOX", msgs...) },
		deliverOne: func(m []byte) error { return d.Save("INBOX", m) }}
}

func memIntake(b testing.TB) intakeServer {
	srv := imaptest.NewServer(b, memserver.Options{})
	app := func(msgs ...[]byte) error {
		for _, m := range msgs {
			if _, err := srv.Append("INBOX", m); err != nil {
				return err
			}
		}
		return nil
	}
	return intakeServer{host: srv.Host(), port: srv.Port(), user: imaptest.Username, pass: imaptest.Password,
		deliver: app, deliverOne: func(m []byte) error { return app(m) }}
}

func startShipped(b testing.TB, s intakeServer) *mailorder.App {
	cfg := load(b, shippedYAML(b, s.host, s.port, s.user, s.pass))
	var a *mailorder.App
	app := fxtest.New(b, platform.Module(cfg, platform.Info{}), mailorder.Module, fx.Populate(&a), fx.NopLogger)
	app.RequireStart()
	b.Cleanup(app.RequireStop)
	require.Eventually(b, func() bool { return a.Source().Status().Connected }, 30*time.Second, time.Millisecond)
	return a
}

// BenchmarkIntake measures mails/s from delivery to moved with the
// shipped configuration's values, 1,000 order mails, two ways:
//
//   - mode=live: the host idles on an empty INBOX, the mails are delivered
//     at once (pipelined APPENDs) and the clock runs from the first APPEND
//     to the last mail moved to Processed: bounded by how fast the server
//     takes the mails in;
//   - mode=backlog: the mails are delivered first, then the host starts and
//     the clock runs from its start to the last mail moved: what the
//     intake itself carries.
//
// Run with -benchtime 1x; the dovecot cases need PLBA_TEST_DOVECOT=1.
func BenchmarkIntake(b *testing.B) {
	const mails = 1000
	for _, srv := range []struct {
		name  string
		start func(testing.TB) intakeServer
	}{{"server=dovecot", dovecotIntake}, {"server=memory", memIntake}} {
		for _, backlog := range []bool{false, true} {
			mode := "mode=live"
			if backlog {
				mode = "mode=backlog"
			}
			b.Run(srv.name+"/"+mode, func(b *testing.B) {
				var total time.Duration
				for it := range b.N {
					b.StopTimer()
					s := srv.start(b)
					msgs := make([][]byte, mails)
					for i := range msgs {
						msgs[i] = sample.OrderMail(it*mails + i)
					}
					var a *mailorder.App
					var began time.Time
					var delivered time.Duration
					if backlog {
						require.NoError(b, s.deliver(msgs...))
						b.StartTimer()
						began = time.Now()
						a = startShipped(b, s)
					} else {
						a = startShipped(b, s)
						b.StartTimer()
						began = time.Now()
						require.NoError(b, s.deliver(msgs...))
						delivered = time.Since(began)
					}
					for a.Source().Status().CompletedOK < mails {
						time.Sleep(time.Millisecond)
					}
					took := time.Since(began)
					total += took
					b.StopTimer()
					st := a.Source().Status()
					b.Logf("delivery took %s, all moved after %s; %d completion batches", delivered, took, st.CompletionBatches)
					n, err := a.Store().Count(context.Background())
					require.NoError(b, err)
					require.Equal(b, mails, n)
				}
				b.ReportMetric(float64(mails*b.N)/total.Seconds(), "mails/s")
			})
		}
	}
}

// BenchmarkIdlePickup measures, on an idling host, the time from the
// delivery of one mail (doveadm save on Dovecot) to its order stored and
// to the mail moved; it reports the median of 5 deliveries.
func BenchmarkIdlePickup(b *testing.B) {
	for _, srv := range []struct {
		name  string
		start func(testing.TB) intakeServer
	}{{"server=dovecot", dovecotIntake}, {"server=memory", memIntake}} {
		b.Run(srv.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				s := srv.start(b)
				a := startShipped(b, s)
				var stored, moved []time.Duration
				for i := range 5 {
					time.Sleep(300 * time.Millisecond) // idle
					began := time.Now()
					require.NoError(b, s.deliverOne(sample.OrderMail(i)))
					for {
						n, err := a.Store().Count(context.Background())
						require.NoError(b, err)
						if n == i+1 {
							break
						}
						time.Sleep(time.Millisecond)
					}
					stored = append(stored, time.Since(began))
					for a.Source().Status().CompletedOK < uint64(i+1) {
						time.Sleep(time.Millisecond)
					}
					moved = append(moved, time.Since(began))
				}
				slices.Sort(stored)
				slices.Sort(moved)
				b.ReportMetric(float64(stored[2].Milliseconds()), "ms-to-stored")
				b.ReportMetric(float64(moved[2].Milliseconds()), "ms-to-moved")
				b.Logf("to stored %v, to moved %v", stored, moved)
			}
		})
	}
}
