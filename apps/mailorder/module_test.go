package mailorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap/zapcore"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/plbatest"
)

// load builds the configuration from yaml plus sets, ignoring the
// environment; the admin server takes a free port.
func load(t testing.TB, yaml string, sets ...string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := config.Load(config.Options{
		Files:   []string{path},
		Environ: []string{},
		Sets:    append([]string{"admin.listen=127.0.0.1:0", "log.level=error"}, sets...),
	})
	require.NoError(t, err)
	return cfg
}

// mailboxYAML points the application at srv (plain IMAP on loopback, IDLE)
// and stores into a fresh SQLite file.
func mailboxYAML(t testing.TB, srv *memserver.Server) string {
	return fmt.Sprintf(`
host:
  apps: [mailorder]
queue:
  backend: memory
workers:
  mailorder:
    concurrency: 4
mailorder:
  mailbox:
    host: %s
    port: %d
    tls: none
    username: %s
    password: %s
    mode: idle
    reconcile: 30s
    reconnect: {initial: 50ms, max: 500ms}
  store:
    sqlite:
      path: %s
`, srv.Host(), srv.Port(), imaptest.Username, imaptest.Password, filepath.Join(t.TempDir(), "data", "orders.db"))
}

type host struct {
	app   *mailorder.App
	admin *admin.Server
	kit   *plbatest.Kit // nil for a host built by startHost
}

// start runs the mailorder app with the platform on the memory backend
// under the test kit, configured by yaml plus sets, until the test ends.
func start(t testing.TB, yaml string, sets ...string) *host {
	t.Helper()
	h := &host{}
	h.kit = plbatest.Start(t, mailorder.Module,
		plbatest.Config(yaml), plbatest.Set(sets...),
		plbatest.With(fx.Populate(&h.app, &h.admin)),
		plbatest.LogLevel(zapcore.ErrorLevel))
	return h
}

// startHost runs the platform plus the mailorder app from cfg as the host
// does, on the backend cfg names (the kit's start runs on memory only).
func startHost(t testing.TB, cfg *config.Config) *host {
	t.Helper()
	h := &host{}
	app := fxtest.New(t,
		platform.Module(cfg, platform.Info{Version: "test"}),
		mailorder.Module,
		fx.Populate(&h.app, &h.admin),
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return h
}

// waitCompleted waits until the source has completed n mails.
func waitCompleted(t testing.TB, a *mailorder.App, n int, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := a.Source().Status()
		return st.CompletedOK+st.CompletedFailed >= uint64(n)
	}, within, 10*time.Millisecond, "want %d mails completed, status %+v", n, a.Source().Status())
}

func folder(t testing.TB, srv *memserver.Server, name string) []memserver.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := srv.Messages(ctx, name)
	if err != nil && strings.Contains(err.Error(), "No such mailbox") {
		return nil
	}
	require.NoError(t, err)
	return msgs
}

func getStatus(t testing.TB, h *host) mailorder.Status {
	t.Helper()
	resp, err := http.Get("http://" + h.admin.Addr() + mailorder.StatusPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var st mailorder.Status
	require.NoError(t, json.Unmarshal(b, &st), string(b))
	return st
}

// 200 mails in the box: every valid one becomes exactly its orders, every
// invalid one lands in the failed folder with a reason; then a mail
// appended while the source idles is processed within 2 seconds.
func TestEndToEndMailboxToOrders(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	const n = 200
	for i := 0; i < n; i++ {
		_, err := srv.Append("INBOX", sample.Mail(i))
		require.NoError(t, err)
	}
	want := sample.Count(n)
	h := start(t, mailboxYAML(t, srv))
	waitCompleted(t, h.app, n, 60*time.Second)
	h.kit.RunUntilIdle()
	require.Len(t, h.kit.Succeeded(mailorder.Kind), want.Valid, "each valid mail is handled once")
	dead := h.kit.DeadLettered(mailorder.Kind)
	require.Len(t, dead, want.Invalid, "each invalid mail is dead-lettered once")
	for _, d := range dead {
		require.Contains(t, d.Reason, "rejected: ")
	}
	require.Empty(t, h.kit.Retried(mailorder.Kind), "a malformed mail is not retried")

	ctx := context.Background()
	count, err := h.app.Store().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, want.Orders, count, "every valid mail becomes exactly its orders")
	orders, err := h.app.Store().List(ctx, 10*n)
	require.NoError(t, err)
	perMail := map[string]int{}
	for _, o := range orders {
		perMail[o.MessageID]++
	}
	for i := 0; i < n; i++ {
		require.Equal(t, sample.VariantOf(i).Orders(), perMail[sample.MessageID(i)], "mail %d", i)
	}

	require.Empty(t, folder(t, srv, "INBOX"))
	require.Len(t, folder(t, srv, "Processed"), want.Valid)
	failed := folder(t, srv, "Failed")
	require.Len(t, failed, want.Invalid)
	for _, m := range failed {
		var i int
		_, err := fmt.Sscanf(m.MessageID, "order-%06d@sample.plba.test", &i)
		require.NoError(t, err)
		require.False(t, sample.VariantOf(i).Valid(), "valid mail %d in the failed folder", i)
	}

	st := getStatus(t, h)
	require.Equal(t, want.Orders, st.Orders)
	require.Len(t, st.FailedMails, want.Invalid)
	for _, f := range st.FailedMails {
		require.Contains(t, f.Reason, "rejected: ", "a human-readable reason")
		require.NotEmpty(t, f.MessageID)
	}
	require.True(t, st.Mailbox.Connected)
	require.EqualValues(t, n, st.Mailbox.Emitted)

	// A mail appended while the source idles is processed before the
	// next reconcile pass (30 s) could find it: IDLE told the source. The
	// bound is not a latency guard (a loaded machine takes seconds).
	time.Sleep(200 * time.Millisecond) // let the source enter IDLE
	began := time.Now()
	_, err = srv.Append("INBOX", sample.Mail(n))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c, err := h.app.Store().Count(ctx)
		return err == nil && c == want.Orders+sample.VariantOf(n).Orders()
	}, 15*time.Second, 5*time.Millisecond, "a mail appended while idling is stored before a reconcile pass")
	t.Logf("append → stored order: %s", time.Since(began))
}

// A mail delivered again (here: the same mail appended twice, as after a
// mailbox restore) never creates a second order.
func TestRedeliveredMailCreatesNoSecondOrder(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	for range 2 {
		_, err := srv.Append("INBOX", sample.Mail(0))
		require.NoError(t, err)
	}
	h := start(t, mailboxYAML(t, srv))
	require.Eventually(t, func() bool { return len(folder(t, srv, "INBOX")) == 0 }, 20*time.Second, 20*time.Millisecond)
	h.kit.RunUntilIdle()
	n, err := h.app.Store().Count(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// configs/demo.yaml runs as shipped (with the admin port and the data
// directory moved for the test, and its demo user off so that the status
// reads without credentials): the seeded orders exist within seconds,
// the bad mails sit in the failed folder with their reasons in the status.
func TestDemoConfig(t *testing.T) {
	t.Parallel()
	demo, err := os.ReadFile(filepath.Join("..", "..", "configs", "demo.yaml"))
	require.NoError(t, err)
	data := t.TempDir()
	cfg := load(t, string(demo), "mailorder.store.sqlite.path="+filepath.Join(data, "mailorder.db"),
		"queue.jetstream.embedded.store_dir="+filepath.Join(data, "nats"), "admin.auth.demo=false")
	h := startHost(t, cfg)
	d := h.app.Demo()
	require.NotNil(t, d)
	seeded := d.Seeded()
	require.Equal(t, 50, seeded.Mails)
	waitCompleted(t, h.app, seeded.Mails, 20*time.Second)

	st := getStatus(t, h)
	require.Equal(t, seeded.Orders, st.Orders)
	require.Len(t, st.FailedMails, seeded.Invalid)
	require.NotNil(t, st.Demo)
	require.Equal(t, map[string]int{"INBOX": 0, "Processed": seeded.Valid, "Failed": seeded.Invalid}, st.Demo.Folders)
	require.Equal(t, d.Server().Addr(), st.Demo.IMAP)
}

func TestConfigProblemsFailTheHost(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		sets []string
		want string
	}{
		{"no mailbox host", []string{"mailorder.queue=orders"}, "mailorder.mailbox"},
		{"unknown driver", []string{"mailorder.demo.enabled=true", "mailorder.store.driver=mysql"}, "mailorder.store.driver"},
		{"postgres without url", []string{"mailorder.demo.enabled=true", "mailorder.store.driver=postgres"}, "mailorder.store.postgres"},
		{"clear text to a remote host", []string{"mailorder.mailbox.host=imap.example.com", "mailorder.mailbox.tls=none",
			"mailorder.mailbox.username=u", "mailorder.mailbox.password=p"}, "mailorder.mailbox"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(config.Options{Environ: []string{}, Sets: tt.sets})
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

// configs/mailorder.yaml takes the mailbox and its secret from the
// environment, and is refused without them.
func TestRealMailboxConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "configs", "mailorder.yaml")
	_, err := config.Load(config.Options{Files: []string{path}, Environ: []string{}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "mailorder.mailbox")

	cfg, err := config.Load(config.Options{Files: []string{path}, Environ: []string{
		"PLBA_MAILORDER__MAILBOX__HOST=imap.example.com",
		"PLBA_MAILORDER__MAILBOX__USERNAME=orders@example.com",
		"PLBA_MAILORDER__MAILBOX__PASSWORD=s3cret-from-env",
	}})
	require.NoError(t, err)
	var mc mailorder.Config
	require.NoError(t, cfg.Decode(mailorder.Section, &mc))
	require.Equal(t, "imap.example.com", mc.Mailbox.Host)
	require.Equal(t, "s3cret-from-env", mc.Mailbox.Password)
	require.NotContains(t, string(cfg.YAML()), "s3cret-from-env", "the password is redacted")
	require.NoError(t, fx.ValidateApp(platform.Module(cfg, platform.Info{}), mailorder.Module))
}

// Without any mailorder settings the host does not build: the mailbox has
// no server.
func TestNoMailboxFailsTheGraph(t *testing.T) {
	t.Parallel()
	cfg := load(t, "{}\n")
	app := fx.New(platform.Module(cfg, platform.Info{}), mailorder.Module, fx.NopLogger)
	require.Error(t, app.Err())
	require.Contains(t, app.Err().Error(), "host: required")
}

// The same way through the PostgreSQL store (enabled by
// PLBA_TEST_POSTGRES_URL; the test's schema is dropped afterwards).
func TestEndToEndOnPostgres(t *testing.T) {
	t.Parallel()
	url := os.Getenv("PLBA_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("PLBA_TEST_POSTGRES_URL not set")
	}
	schema := fmt.Sprintf("mailorder_e2e_%d", time.Now().UnixNano())
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
	const n = 40
	for i := 0; i < n; i++ {
		_, err := srv.Append("INBOX", sample.Mail(i))
		require.NoError(t, err)
	}
	want := sample.Count(n)
	h := start(t, mailboxYAML(t, srv), "mailorder.store.driver=postgres",
		"mailorder.store.postgres.url="+url, "mailorder.store.postgres.schema="+schema)
	waitCompleted(t, h.app, n, 60*time.Second)
	count, err := h.app.Store().Count(context.Background())
	require.NoError(t, err)
	require.Equal(t, want.Orders, count)
	require.Len(t, folder(t, srv, "Failed"), want.Invalid)
	st := getStatus(t, h)
	require.Equal(t, "postgres", st.Store)
	require.Len(t, st.FailedMails, want.Invalid)
}

// Behind authentication the application's page answers the viewer role
// and no one without credentials: the customers' addresses it shows are
// not readable without a role.
func TestStatusPageNeedsTheViewerRole(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	for i := 0; i < 5; i++ {
		_, err := srv.Append("INBOX", sample.Mail(i))
		require.NoError(t, err)
	}
	const viewer = "viewer-token-0123456789"
	h := start(t, mailboxYAML(t, srv)+"admin:\n  auth:\n    tokens:\n      - {name: dashboards, role: viewer, token: "+viewer+"}\n")
	waitCompleted(t, h.app, 5, 20*time.Second)
	url := "http://" + h.admin.Addr() + mailorder.StatusPath
	for _, tc := range []struct {
		token string
		code  int
	}{{"", http.StatusUnauthorized}, {"wrong-token-0123456789", http.StatusUnauthorized}, {viewer, http.StatusOK}} {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, tc.code, resp.StatusCode, string(b))
		if tc.code != http.StatusOK {
			require.NotContains(t, string(b), "@", "no address without a role")
			continue
		}
		var st mailorder.Status
		require.NoError(t, json.Unmarshal(b, &st))
		require.NotEmpty(t, st.RecentOrders)
		require.Contains(t, st.RecentOrders[0].Customer, "@", "the viewer sees the customers")
	}
}
