package imap_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	base := imap.Config{Host: "imap.example.com", Username: "u", Password: "p", Kind: "mail"}
	c := base.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, imap.TLSImplicit, c.TLS)
	require.Equal(t, 993, c.Port)
	require.Equal(t, "INBOX", c.Mailbox)
	require.Equal(t, "imap/INBOX", c.Name)
	require.Equal(t, imap.ModeIdle, c.Mode)
	require.Less(t, c.IdleRenew, imap.MaxIdleRenew)
	require.True(t, *c.OnSuccess.Seen)
	require.Equal(t, "Processed", *c.OnSuccess.MoveTo)
	require.Equal(t, "Failed", *c.OnFailure.MoveTo)
	require.Equal(t, imap.DefaultCommandTimeout, c.CommandTimeout)
	require.Equal(t, imap.DefaultRefusalSpan, c.RefusalSpan)

	starttls := base
	starttls.TLS = imap.TLSStartTLS
	require.Equal(t, 143, starttls.WithDefaults().Port)

	for _, tt := range []struct {
		name  string
		tweak func(*imap.Config)
		key   string
	}{
		{"clear text to a remote host", func(c *imap.Config) { c.TLS = imap.TLSNone }, "tls"},
		{"unknown tls mode", func(c *imap.Config) { c.TLS = "ssl" }, "tls"},
		{"no host", func(c *imap.Config) { c.Host = "" }, "host"},
		{"no password", func(c *imap.Config) { c.Password = "" }, "password"},
		{"no kind", func(c *imap.Config) { c.Kind = "" }, "kind"},
		{"idle renew at the RFC limit", func(c *imap.Config) { c.IdleRenew = 29 * time.Minute }, "idle_renew"},
		{"unknown mode", func(c *imap.Config) { c.Mode = "push" }, "mode"},
		{"nothing marks processed mail", func(c *imap.Config) { c.OnSuccess.Seen = imap.Ptr(false); c.OnSuccess.MoveTo = imap.Ptr("") }, "on_success"},
		{"moving into the watched mailbox", func(c *imap.Config) { c.OnFailure.MoveTo = imap.Ptr("inbox") }, "on_failure.move_to"},
		{"port out of range", func(c *imap.Config) { c.Port = 70000 }, "port"},
		{"negative command timeout", func(c *imap.Config) { c.CommandTimeout = -time.Second }, "command_timeout"},
		{"negative refusal span", func(c *imap.Config) { c.RefusalSpan = -time.Second }, "refusal_span"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := base
			tt.tweak(&c)
			err := c.WithDefaults().Validate()
			require.ErrorIs(t, err, imap.ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.key+":")
			require.NotContains(t, err.Error(), "p\"", "no password in errors")
		})
	}

	// Clear text is fine on loopback, and elsewhere only when allowed.
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		c := base
		c.Host, c.TLS = host, imap.TLSNone
		require.NoError(t, c.WithDefaults().Validate(), host)
	}
	c = base
	c.TLS, c.AllowInsecure = imap.TLSNone, true
	require.NoError(t, c.WithDefaults().Validate())
}

// selfSigned returns a server TLS config for 127.0.0.1 with a fresh
// self-signed certificate.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{TLSConfig: selfSigned(t)})
	appendN(t, srv, 1, 2)

	// A certificate that does not verify stops Run: retrying cannot fix it.
	cfg := testConfig(srv.Host(), srv.Port())
	cfg.TLS = imap.TLSImplicit
	strict := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := strict.Run(ctx, &fakeEmitter{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")

	cfg.InsecureSkipVerify = true
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	complete(t, src, em.all()[0], task.Succeeded)
	require.Len(t, messages(t, srv, "Processed"), 1)
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{TLSConfig: selfSigned(t), StartTLS: true})
	appendN(t, srv, 1, 2)
	cfg := testConfig(srv.Host(), srv.Port())
	cfg.TLS, cfg.InsecureSkipVerify = imap.TLSStartTLS, true
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	complete(t, src, em.all()[1], task.DeadLettered)
	require.Len(t, messages(t, srv, "Failed"), 1)
}

func TestIdleFallsBackToPollingWithoutIdle(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{Caps: goimap.CapSet{goimap.CapIMAP4rev1: {}}})
	proxy := imaptest.NewProxy(t, srv.Addr())
	proxy.HideCapability("IDLE")
	cfg := testConfig(proxy.Host(), proxy.Port())
	cfg.Mode, cfg.PollInterval = imap.ModeIdle, 50*time.Millisecond
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	appendN(t, srv, 1, 2)
	waitEmitted(t, em, 2)
	require.Equal(t, imap.ModePoll, src.Status().Mode)
}

// A server that announces IDLE and refuses it (a NO or a BAD to the
// IDLE command, as a server with a limit on idling connections does)
// gets polled on the same connection, as one without IDLE: the source
// reconnected instead, every Reconnect.Max for ever (here 58 logins in
// 5 s), and, between two sessions, reported itself not connected, so
// its readiness check failed while its mail flowed.
func TestRefusedIdleFallsBackToPolling(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{"NO IDLE not allowed", "BAD Unknown command"} {
		t.Run(answer, func(t *testing.T) {
			t.Parallel()
			srv := imaptest.NewServer(t, memserver.Options{})
			p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				if tag, name, _ := command(line); name == "IDLE" {
					c.Reply(tag + " " + answer + "\r\n")
					return true
				}
				return false
			}})
			cfg := testConfig(p.Host(), p.Port())
			// Check allows 3 poll intervals since the last search: seconds,
			// as a loaded machine may take a while over one.
			cfg.Mode, cfg.PollInterval = imap.ModeIdle, time.Second
			src, logs := observedSource(t, cfg)
			em := &fakeEmitter{}
			start(t, src, em)
			appendN(t, srv, 1, 1)
			waitEmitted(t, em, 1)
			appendN(t, srv, 2, 1)
			waitEmitted(t, em, 2)
			time.Sleep(500 * time.Millisecond)
			st := src.Status()
			require.Zero(t, st.Reconnects, "one connection: %s", st.LastError)
			require.EqualValues(t, 1, p.Accepted())
			require.Equal(t, imap.ModePoll, st.Mode)
			require.True(t, st.Connected)
			require.NoError(t, src.Check(context.Background()))
			require.Len(t, logs.FilterMessageSnippet("refuses IDLE").All(), 1)
		})
	}
}

func TestCheckFailsWhenTheLastSearchIsStale(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.PollInterval = 100 * time.Millisecond })
	require.ErrorIs(t, b.src.Check(context.Background()), imap.ErrNotReady, "not connected yet")
	b.run(t)
	require.Eventually(t, func() bool { return b.src.Check(context.Background()) == nil }, 5*time.Second, 5*time.Millisecond)
	b.stop()
	require.ErrorIs(t, b.src.Check(context.Background()), imap.ErrNotReady, "stopped: not connected")
}

// Module's "imap" section: the defaults that follow other keys (port,
// name) follow them, and a problem names its key under the section.
func TestModuleSection(t *testing.T) {
	t.Parallel()
	sets := []string{"imap.host=127.0.0.1", "imap.tls=none", "imap.username=u", "imap.password=p", "imap.kind=mail", "imap.mailbox=Orders"}
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: sets})
	require.NoError(t, err)
	var src *imap.Source
	app := fxtest.New(t, imap.Module, fx.Supply(cfg), fx.Populate(&src))
	app.RequireStart().RequireStop()
	require.Equal(t, 143, src.Config().Port)
	require.Equal(t, "imap/Orders", src.Config().Name)
	require.Equal(t, imap.DefaultPollInterval, src.Config().PollInterval)

	_, err = config.Load(config.Options{Environ: []string{}, Sets: []string{"imap.host=imap.example.com", "imap.tls=none"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "imap.tls:")
	require.Contains(t, err.Error(), "imap.kind: required")
}

func TestModuleProvidesSourceAndCheck(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	type in struct {
		fx.In
		Src     *imap.Source
		Sources []source.Source `group:"task.sources"`
		Checks  []health.Check  `group:"health.checks"`
	}
	var got in
	cfg, err := config.Load(config.Options{Environ: []string{},
		Values: map[string]any{imap.Section: testConfig(srv.Host(), srv.Port())}})
	require.NoError(t, err)
	app := fxtest.New(t, imap.Module, fx.Supply(cfg), fx.Invoke(func(p in) { got = p }))
	app.RequireStart()
	require.Len(t, got.Sources, 1)
	require.Same(t, got.Src, got.Sources[0])
	require.Len(t, got.Checks, 1)
	require.True(t, got.Checks[0].Gating)
	require.Equal(t, "imap/INBOX", got.Checks[0].Name)
	require.Eventually(t, func() bool { return got.Checks[0].Func(context.Background()) != nil }, time.Second, time.Millisecond,
		"not ready: the source is not running without the runtime")
	app.RequireStop()
	tk := &task.Task{Key: "k", Headers: map[string]string{imap.HeaderMessageID: "x"}}
	require.ErrorIs(t, got.Src.Complete(context.Background(), tk, task.Succeeded, ""), imap.ErrClosed,
		"the module closes the completion connection on stop")
}

// The mailbox source is exclusive by default; while its host waits for
// the lease (a standby) it passes its readiness check, and once it holds
// the lease the check is about the connection again.
func TestExclusiveByDefaultAndReadyAsAStandby(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	require.True(t, b.src.Exclusive())
	require.True(t, *b.src.Config().Exclusive)
	require.ErrorIs(t, b.src.Check(context.Background()), imap.ErrNotReady, "not running, not a standby")
	b.src.SetStandby(true)
	require.NoError(t, b.src.Check(context.Background()), "a standby is ready")
	require.True(t, b.src.Status().Standby)
	b.src.SetStandby(false)
	require.ErrorIs(t, b.src.Check(context.Background()), imap.ErrNotReady)

	off := setup(t, memserver.Options{}, func(c *imap.Config) { c.Exclusive = imap.Ptr(false) })
	require.False(t, off.src.Exclusive())
}
