package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/plba/plba/platform/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// PoolConfig is a map-valued section's entry (workers.<queue>).
type PoolConfig struct {
	Concurrency int           `koanf:"concurrency"`
	TaskTimeout time.Duration `koanf:"task_timeout"`
}

func (p PoolConfig) Validate() error {
	var ps config.Problems
	if p.Concurrency < 1 {
		ps.Add("concurrency", "must be at least 1 (got %d)", p.Concurrency)
	}
	return ps.Err()
}

type ServerConfig struct {
	Host     string        `koanf:"host"`
	Port     int           `koanf:"port"`
	Password string        `koanf:"password" secret:"true"`
	Timeout  time.Duration `koanf:"timeout"`
	Tags     []string      `koanf:"tags"`
	TLS      bool          `koanf:"tls"`
}

func (s ServerConfig) Validate() error {
	if s.Port < 1 || s.Port > 65535 {
		return config.Invalid("port", "must be between 1 and 65535 (got %d)", s.Port)
	}
	return nil
}

type QueueConfig struct {
	Backend string `koanf:"backend"`
}

type JetStreamConfig struct {
	URL      string `koanf:"url"`
	Replicas int    `koanf:"replicas"`
}

func testRegistry(t testing.TB) *config.Registry {
	t.Helper()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("workers", map[string]PoolConfig{
		"default": {Concurrency: 2, TaskTimeout: 30 * time.Second},
	}))
	require.NoError(t, r.Declare("server", ServerConfig{Host: "localhost", Port: 8080, Timeout: 5 * time.Second}))
	require.NoError(t, r.Declare("queue", QueueConfig{Backend: "memory"}))
	require.NoError(t, r.Declare("queue.jetstream", JetStreamConfig{Replicas: 1}))
	return r
}

// writeFile writes a YAML file into a fresh temporary directory.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func load(t testing.TB, opts config.Options) (*config.Config, error) {
	t.Helper()
	opts.Registry = testRegistry(t)
	if opts.Environ == nil {
		opts.Environ = []string{}
	}
	return config.Load(opts)
}

func mustLoad(t testing.TB, opts config.Options) *config.Config {
	t.Helper()
	c, err := load(t, opts)
	require.NoError(t, err)
	return c
}

func server(t testing.TB, c *config.Config) ServerConfig {
	t.Helper()
	var s ServerConfig
	require.NoError(t, c.Decode("server", &s))
	return s
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	f1 := writeFile(t, "one.yaml", "server:\n  host: one.example\n  port: 9001\n")
	f2 := writeFile(t, "two.yaml", "server:\n  port: 9002\n")
	env := []string{"PLBA_SERVER__PORT=9003", "HOME=/root"}
	sets := []string{"server.port=9004"}

	tests := []struct {
		name     string
		opts     config.Options
		wantPort int
		wantHost string
	}{
		{"defaults only", config.Options{}, 8080, "localhost"},
		{"first file", config.Options{Files: []string{f1}}, 9001, "one.example"},
		{"second file wins, first keeps its other keys", config.Options{Files: []string{f1, f2}}, 9002, "one.example"},
		{"file order matters", config.Options{Files: []string{f2, f1}}, 9001, "one.example"},
		{"env beats files", config.Options{Files: []string{f1, f2}, Environ: env}, 9003, "one.example"},
		{"--set beats env", config.Options{Files: []string{f1, f2}, Environ: env, Sets: sets}, 9004, "one.example"},
		{"later --set wins", config.Options{Sets: []string{"server.port=1", "server.port=2"}}, 2, "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := server(t, mustLoad(t, tt.opts))
			require.Equal(t, tt.wantPort, s.Port)
			require.Equal(t, tt.wantHost, s.Host)
			require.Equal(t, 5*time.Second, s.Timeout, "untouched default")
		})
	}
}

func TestEnvAndSetValuesTakeTheFieldsType(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, config.Options{
		Environ: []string{
			"PLBA_WORKERS__DEFAULT__TASK_TIMEOUT=1m",
			"PLBA_SERVER__PASSWORD=12345",
			"PLBA_SERVER__TLS=true",
			"PLBA_CONFIG=ignored.yaml", // no double underscore: not a key
		},
		Sets: []string{"server.tags=a, b", "server.host=10"},
	})
	s := server(t, c)
	require.Equal(t, "12345", s.Password)
	require.True(t, s.TLS)
	require.Equal(t, []string{"a", "b"}, s.Tags)
	require.Equal(t, "10", s.Host)

	var w map[string]PoolConfig
	require.NoError(t, c.Decode("workers", &w))
	require.Equal(t, time.Minute, w["default"].TaskTimeout)
}

func TestMapSectionEntriesStartFromDefaultEntry(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "w.yaml", `
workers:
  default:
    task_timeout: 10s
  orders:
    concurrency: 4
  mail:
`)
	c := mustLoad(t, config.Options{
		Files:   []string{f},
		Environ: []string{"PLBA_WORKERS__INVOICES__TASK_TIMEOUT=2m"},
	})
	var w map[string]PoolConfig
	require.NoError(t, c.Decode("workers", &w))
	require.Equal(t, map[string]PoolConfig{
		"default":  {Concurrency: 2, TaskTimeout: 10 * time.Second},
		"orders":   {Concurrency: 4, TaskTimeout: 10 * time.Second},
		"mail":     {Concurrency: 2, TaskTimeout: 10 * time.Second},
		"invoices": {Concurrency: 2, TaskTimeout: 2 * time.Minute},
	}, w)
}

func TestDottedSectionsOwnTheirKeys(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "q.yaml", "queue:\n  backend: jetstream\n  jetstream:\n    url: nats://a\nqueue.jetstream:\n  replicas: 3\n")
	c := mustLoad(t, config.Options{Files: []string{f}})
	var q QueueConfig
	require.NoError(t, c.Decode("queue", &q))
	require.Equal(t, QueueConfig{Backend: "jetstream"}, q)
	var js JetStreamConfig
	require.NoError(t, c.Decode("queue.jetstream", &js))
	require.Equal(t, JetStreamConfig{URL: "nats://a", Replicas: 3}, js)

	_, err := load(t, config.Options{Sets: []string{"queue.jetstream.urll=x"}})
	requireProblem(t, err, "--set queue.jetstream.urll=...", "queue.jetstream.urll", "unknown key")
}

func TestNullDoesNotEraseLowerLayers(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "n.yaml", "server:\nqueue: ~\n")
	s := server(t, mustLoad(t, config.Options{Files: []string{f}}))
	require.Equal(t, 8080, s.Port)
}

// requireProblem asserts err is a *config.Error holding a problem with the
// given source and key whose message contains msg.
func requireProblem(t testing.TB, err error, src, key, msg string) {
	t.Helper()
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	for _, p := range cerr.Problems {
		if p.Source == src && p.Key == key && strings.Contains(p.Msg, msg) {
			line := src + ": "
			if key != "" {
				line += key + ": "
			}
			require.Contains(t, err.Error(), line+p.Msg)
			return
		}
	}
	require.Failf(t, "problem not found", "want %s / %s / %q in:\n%v", src, key, msg, err)
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		name      string
		file      string // YAML content, written to a file when set
		opts      config.Options
		src, key  string // src "FILE" stands for the written file
		msg       string
		wholeLine string // when set, the exact line Error() must contain
	}{
		{name: "unknown key", file: "server:\n  hots: x\n", src: "FILE", key: "server.hots", msg: "unknown key (known keys: host, port"},
		{name: "unknown section from env", opts: config.Options{Environ: []string{"PLBA_NOPE__X=1"}}, src: "env PLBA_NOPE__X", key: "nope", msg: "unknown section"},
		{name: "unknown section in file", file: "imapp:\n  host: x\n", src: "FILE", key: "imapp", msg: "unknown section (declared sections: queue, queue.jetstream, server, workers)"},
		{name: "wrong type in file", file: "server:\n  port: four\n", src: "FILE", key: "server.port", msg: `expected an integer, got string "four"`},
		{name: "wrong type from env", opts: config.Options{Environ: []string{"PLBA_SERVER__PORT=four"}}, src: "env PLBA_SERVER__PORT", key: "server.port", msg: `expected an integer, got string "four"`},
		{name: "number where string expected", file: "server:\n  host: 12\n", src: "FILE", key: "server.host", msg: "expected a string, got integer 12"},
		{name: "mapping where value expected", file: "server:\n  port: {a: 1}\n", src: "FILE", key: "server.port", msg: "expected an integer, got a mapping"},
		{name: "malformed duration", opts: config.Options{Sets: []string{"server.timeout=5 parsecs"}}, src: "--set server.timeout=...", key: "server.timeout", msg: `invalid duration "5 parsecs"`},
		{name: "duration without unit", file: "server:\n  timeout: 5\n", src: "FILE", key: "server.timeout", msg: "expected a duration"},
		{
			name: "invalid value via Validate", file: "workers:\n  default:\n    concurrency: -3\n",
			src: "FILE", key: "workers.default.concurrency", msg: "must be at least 1 (got -3)",
			wholeLine: "FILE: workers.default.concurrency: must be at least 1 (got -3)",
		},
		{name: "invalid map entry via Validate", opts: config.Options{Environ: []string{"PLBA_WORKERS__ORDERS__CONCURRENCY=0"}}, src: "env PLBA_WORKERS__ORDERS__CONCURRENCY", key: "workers.orders.concurrency", msg: "must be at least 1 (got 0)"},
		{name: "port out of range", opts: config.Options{Sets: []string{"server.port=70000"}}, src: "--set server.port=...", key: "server.port", msg: "must be between 1 and 65535 (got 70000)"},
		{name: "bad YAML names the line", file: "server:\n  port: 1\n bad: [\n", src: "FILE", msg: "invalid YAML: line 2: did not find expected key"},
		{name: "missing file", opts: config.Options{Files: []string{missing}}, src: missing, msg: "cannot read file: no such file or directory"},
		{name: "unreadable secret file", file: "server:\n  password_file: /nonexistent/secret\n", src: "FILE", key: "server.password_file", msg: "cannot read secret file"},
		{name: "--set without =", opts: config.Options{Sets: []string{"server.port"}}, src: "--set", msg: `usage: expected key=value with a dotted key, got "server.port"`},
		{name: "section is not a mapping", file: "server: 5\n", src: "FILE", key: "server", msg: "expected a mapping, got integer 5"},
		{name: "parent of dotted section not a mapping", opts: config.Options{Sets: []string{"queue=x"}}, src: "--set queue=...", key: "queue", msg: "expected a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			src := tt.src
			if tt.file != "" {
				f := writeFile(t, "c.yaml", tt.file)
				opts.Files = append(opts.Files, f)
				if src == "FILE" {
					src = f
				}
			}
			c, err := load(t, opts)
			require.Nil(t, c)
			requireProblem(t, err, src, tt.key, tt.msg)
			if tt.wholeLine != "" {
				require.Contains(t, strings.Split(err.Error(), "\n"), strings.ReplaceAll(tt.wholeLine, "FILE", src))
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "many.yaml", `
server:
  hots: x
  port: four
workers:
  orders:
    concurrency: -1
`)
	_, err := load(t, config.Options{
		Files:   []string{f, filepath.Join(t.TempDir(), "nope.yaml")},
		Environ: []string{"PLBA_NOPE__X=1"},
		Sets:    []string{"server.timeout=soon", "broken"},
	})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Len(t, cerr.Problems, 7, "%v", err)
	requireProblem(t, err, f, "server.hots", "unknown key")
	requireProblem(t, err, f, "server.port", "expected an integer")
	requireProblem(t, err, f, "workers.orders.concurrency", "must be at least 1")
	requireProblem(t, err, "env PLBA_NOPE__X", "nope", "unknown section")
	requireProblem(t, err, "--set server.timeout=...", "server.timeout", "invalid duration")
	requireProblem(t, err, "--set", "", "usage")
	require.Len(t, strings.Split(err.Error(), "\n"), 7)
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "pw", "  s3cret-from-file\n")
	c := mustLoad(t, config.Options{Sets: []string{"server.password_file=" + secret}})
	s := server(t, c)
	require.Equal(t, "s3cret-from-file", s.Password)

	out := string(c.YAML())
	require.Contains(t, out, "password: '[redacted]'")
	require.NotContains(t, out, "s3cret")
	require.Contains(t, out, "timeout: 5s")
	require.Contains(t, out, "jetstream:")

	red := config.Redact(s).(ServerConfig)
	require.Equal(t, config.Redacted, red.Password)
	require.Equal(t, "s3cret-from-file", s.Password, "original unchanged")
	require.Equal(t, s.Host, red.Host)

	nested := map[string]*ServerConfig{"a": &s, "b": {}}
	rn := config.Redact(nested).(map[string]*ServerConfig)
	require.Equal(t, config.Redacted, rn["a"].Password)
	require.Empty(t, rn["b"].Password, "empty secrets stay empty")
	require.Equal(t, "s3cret-from-file", nested["a"].Password)
	require.Nil(t, config.Redact(nil))

	// A secret from the environment works the same way.
	c2 := mustLoad(t, config.Options{Environ: []string{"PLBA_SERVER__PASSWORD=env-pw"}})
	require.Equal(t, "env-pw", server(t, c2).Password)
	require.NotContains(t, string(c2.YAML()), "env-pw")
}

func TestDigestAndFiles(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "d.yaml", "server:\n  port: 9000\n")
	a := mustLoad(t, config.Options{Files: []string{f}})
	b := mustLoad(t, config.Options{Sets: []string{"server.port=9000"}})
	require.Len(t, a.Digest(), 12)
	require.Equal(t, a.Digest(), b.Digest(), "same effective configuration")
	require.NotEqual(t, a.Digest(), mustLoad(t, config.Options{}).Digest())
	require.Equal(t,
		mustLoad(t, config.Options{Files: []string{f}, Sets: []string{"server.password=x"}}).Digest(),
		mustLoad(t, config.Options{Files: []string{f}, Sets: []string{"server.password=y"}}).Digest(),
		"digest covers the redacted configuration")
	require.Equal(t, []string{f}, a.Files())
	require.Empty(t, b.Files())
}

func TestDecodeUnknownSection(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, config.Options{})
	var v struct{}
	require.ErrorIs(t, c.Decode("nope", &v), config.ErrUnknownSection)
	require.Error(t, c.Decode("server", v))
}

func TestDeclare(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("a.b", struct{}{}))
	require.NoError(t, r.Declare("a.b", struct{}{}), "the same declaration again")
	require.Error(t, r.Declare("a.b", struct{ X int }{}), "twice, with another type")
	require.NoError(t, r.Declare("c", ServerConfig{Port: 1}))
	require.Error(t, r.Declare("c", ServerConfig{Port: 2}), "twice, with another default")
	require.Error(t, r.Declare("Bad-Name", struct{}{}))
	require.Error(t, r.Declare("x", nil))
	require.Equal(t, []string{"a.b", "c"}, r.Names())
}

// strictServer is decoded from the same section with a stricter check.
type strictServer ServerConfig

func (s strictServer) Validate() error {
	if !s.TLS {
		return config.Invalid("tls", "must be true in production")
	}
	return nil
}

func TestSectionWithFx(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, config.Options{Sets: []string{"server.port=9999"}})

	var got ServerConfig
	app := fxtest.New(t,
		fx.Supply(c),
		config.Declaration[ServerConfig]{Name: "server"}.Provide(),
		fx.Populate(&got),
	)
	app.RequireStart().RequireStop()
	require.Equal(t, 9999, got.Port)

	// A failing Validate fails fx.New, even with no consumer of the type.
	bad := fx.New(fx.NopLogger, fx.Supply(c), config.Declaration[strictServer]{Name: "server"}.Provide())
	var cerr *config.Error
	require.ErrorAs(t, bad.Err(), &cerr)
	require.Equal(t, []config.Problem{{Source: "default", Key: "server.tls", Msg: "must be true in production"}}, cerr.Problems)

	undeclared := fx.New(fx.NopLogger, fx.Supply(c), config.Declaration[ServerConfig]{Name: "nope"}.Provide())
	require.ErrorIs(t, undeclared.Err(), config.ErrUnknownSection)
}

func TestProblemsCollector(t *testing.T) {
	t.Parallel()
	var ps config.Problems
	require.NoError(t, ps.Err())
	ps.Add("a", "bad %d", 1)
	ps.Add("", "whole")
	err := ps.Err()
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr))
	require.Equal(t, "a: bad 1\nwhole", err.Error())
}

// ExporterConfig has a secret map (HTTP headers with tokens) and a plain
// Validate error in the "key: problem" convention.
type ExporterConfig struct {
	Endpoint string            `koanf:"endpoint"`
	Headers  map[string]string `koanf:"headers" secret:"true"`
	Limits   struct {
		Batch int `koanf:"batch"`
	} `koanf:"limits"`
}

func (e ExporterConfig) Validate() error {
	if e.Limits.Batch < 0 {
		return errors.New("limits: batch: must not be negative")
	}
	if e.Endpoint == "bad" {
		return errors.New("endpoint is bad in a way that names no key")
	}
	return nil
}

func TestSecretMapsAreRedacted(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("exporter", ExporterConfig{}))
	c, err := config.Load(config.Options{Registry: r, Environ: []string{"PLBA_EXPORTER__HEADERS__AUTHORIZATION=Bearer t0ken"}})
	require.NoError(t, err)
	var e ExporterConfig
	require.NoError(t, c.Decode("exporter", &e))
	require.Equal(t, "Bearer t0ken", e.Headers["authorization"])
	out := string(c.YAML())
	require.NotContains(t, out, "t0ken")
	require.Contains(t, out, "authorization: '[redacted]'", "header names stay visible")
	red := config.Redact(e).(ExporterConfig)
	require.Equal(t, config.Redacted, red.Headers["authorization"])
	require.Equal(t, "Bearer t0ken", e.Headers["authorization"], "original unchanged")
}

func TestValidateErrorsLandOnTheirKey(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("exporter", ExporterConfig{}))
	_, err := config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{"exporter.limits.batch=-1"}})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Len(t, cerr.Problems, 1)
	require.Equal(t, "exporter.limits.batch", cerr.Problems[0].Key)
	require.Equal(t, "must not be negative", cerr.Problems[0].Msg)
	require.Contains(t, cerr.Problems[0].Source, "--set")

	_, err = config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{"exporter.endpoint=bad"}})
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, "exporter", cerr.Problems[0].Key, "a message without a key prefix stays on the section")
	require.Equal(t, "endpoint is bad in a way that names no key", cerr.Problems[0].Msg)
}

// NeedsInput has defaults that are not valid on their own: it needs a
// setting (like an application's mailbox host) before it can be used.
type NeedsInput struct {
	Host string `koanf:"host"`
	Port int    `koanf:"port"`
}

func (n NeedsInput) Validate() error {
	if n.Host == "" {
		return config.Invalid("host", "required")
	}
	return nil
}

// A section nobody configured is not validated by Load (its module may not
// be in the host), but is when a layer sets any of its keys, and always by
// Decode (which Provide uses when a module is composed).
func TestUntouchedSectionsAreValidatedOnUse(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("mailbox", NeedsInput{Port: 993}))
	c, err := config.Load(config.Options{Registry: r, Environ: []string{}})
	require.NoError(t, err, "untouched: not validated by Load")
	var n NeedsInput
	err = c.Decode("mailbox", &n)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr, "Decode validates")
	require.Equal(t, "mailbox.host", cerr.Problems[0].Key)

	_, err = config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{"mailbox.port=143"}})
	require.ErrorAs(t, err, &cerr, "touched: validated by Load")
	require.Equal(t, "mailbox.host", cerr.Problems[0].Key)

	c, err = config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{"mailbox.host=imap.example.com"}})
	require.NoError(t, err)
	require.NoError(t, c.Decode("mailbox", &n))
	require.Equal(t, NeedsInput{Host: "imap.example.com", Port: 993}, n)

	_, err = config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{"mailbox.port=many"}})
	require.ErrorAs(t, err, &cerr, "type errors are always reported")
}

// TestSecretValuesNeverInMessages: a secret given with the wrong type, or
// in a malformed --set, is reported by its key and kind; its value never
// appears in the error.
func TestSecretValuesNeverInMessages(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("server", ServerConfig{Port: 1}))
	require.NoError(t, r.Declare("exporter", ExporterConfig{}))
	file := writeFile(t, "s.yaml", "server:\n  password: 123456789\n")
	_, err := config.Load(config.Options{Registry: r, Files: []string{file},
		Environ: []string{"PLBA_EXPORTER__HEADERS=Bearer s3cr3t-token"},
		Sets:    []string{".server.password=hunter2", "=hunter3"}})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	msg := err.Error()
	for _, secret := range []string{"123456789", "s3cr3t-token", "hunter2", "hunter3"} {
		require.NotContains(t, msg, secret)
	}
	require.Contains(t, msg, "server.password: expected a string, got an integer (value hidden: the key is secret)")
	require.Contains(t, msg, "exporter.headers: expected a mapping, got a string (value hidden: the key is secret)")
	require.Contains(t, msg, `got key ".server.password" (value not shown)`)
	require.Len(t, cerr.Problems, 4)
}

// TestYAMLErrorsDoNotQuoteTheInput: a file that is not YAML of sections
// (a secret passed to --config by mistake) is reported without its text.
func TestYAMLErrorsDoNotQuoteTheInput(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "secret.txt", "hunter2\n")
	_, err := load(t, config.Options{Files: []string{file}})
	require.ErrorContains(t, err, "secret.txt: invalid YAML")
	require.NotContains(t, err.Error(), "hunter2")
}

// TestNullTemplateEntry: a map section whose "default" entry is null
// (and has no declared default) decodes the other entries as they are.
func TestNullTemplateEntry(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("pools", map[string]PoolConfig{}))
	file := writeFile(t, "p.yaml", "pools: {default: ~, orders: {concurrency: 2}}\n")
	c, err := config.Load(config.Options{Registry: r, Files: []string{file}, Environ: []string{}})
	require.NoError(t, err)
	var pools map[string]PoolConfig
	require.NoError(t, c.Decode("pools", &pools))
	require.Equal(t, 2, pools["orders"].Concurrency)
}

// TestFilesAreReadWithALimit: a configuration or secret file name that
// points at an endless file fails with a message, not an exhausted
// memory.
func TestFilesAreReadWithALimit(t *testing.T) {
	t.Parallel()
	// Configuration and secret files must be regular files (a device is
	// refused as such: TestConfigFileMustBeRegular): a large one is
	// refused by size (sparse: it costs no disk).
	big := filepath.Join(t.TempDir(), "big")
	require.NoError(t, os.WriteFile(big, nil, 0o600))
	require.NoError(t, os.Truncate(big, config.MaxFileSize+1))
	_, err := load(t, config.Options{Files: []string{big}, Sets: []string{"server.password_file=" + big}})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.ErrorContains(t, err, big+": cannot read file: larger than 16 MiB")
	require.ErrorContains(t, err, "server.password_file: cannot read secret file: larger than 16 MiB")
}

// TestSecretFileMustBeRegular: a secret file naming a FIFO nobody writes
// to (reading it would block for ever) or a device is refused at once,
// naming the key and what the file is.
func TestSecretFileMustBeRegular(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "pw")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO: %v", err)
	}
	done := make(chan error, 1)
	go func() { // would block for ever on a FIFO without the check
		_, err := load(t, config.Options{Sets: []string{"server.password_file=" + fifo}})
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "server.password_file: cannot read secret file: "+fifo+" is a named pipe (FIFO), not a regular file")
	case <-time.After(20 * time.Second):
		f, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // unblock the reader
		if f != nil {
			_ = f.Close()
		}
		<-done
		t.Fatal("loading a FIFO secret file hung")
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := load(t, config.Options{Sets: []string{"server.password_file=/dev/zero"}})
		require.ErrorContains(t, err, "server.password_file: cannot read secret file: /dev/zero is a device, not a regular file")
	}
	_, err := load(t, config.Options{Sets: []string{"server.password_file=" + t.TempDir()}})
	require.ErrorContains(t, err, "is a directory, not a regular file")
}

// ClusterConfig has URLs whose user information is secret.
type ClusterConfig struct {
	URL  string   `koanf:"url" secret:"userinfo"`
	URLs []string `koanf:"urls" secret:"userinfo"`
}

// TestURLUserinfoIsRedacted: URLs tagged secret:"userinfo" show their
// servers but not their credentials, in YAML and in Redact; decoding
// keeps them whole.
func TestURLUserinfoIsRedacted(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("cluster", ClusterConfig{}))
	c, err := config.Load(config.Options{Registry: r, Environ: []string{},
		Sets: []string{"cluster.url=nats://alice:s3cr3tpw@10.0.0.1:4222,nats://t0ken@10.0.0.2:4222", "cluster.urls=[nats://bob:pa55@10.0.0.3:4222, nats://10.0.0.4:4222]"}})
	require.NoError(t, err)
	var cc ClusterConfig
	require.NoError(t, c.Decode("cluster", &cc))
	require.Equal(t, "nats://alice:s3cr3tpw@10.0.0.1:4222,nats://t0ken@10.0.0.2:4222", cc.URL)

	out := string(c.YAML())
	for _, secret := range []string{"alice", "s3cr3tpw", "t0ken", "bob", "pa55"} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "url: nats://[redacted]@10.0.0.1:4222,nats://[redacted]@10.0.0.2:4222")
	require.Contains(t, out, "nats://[redacted]@10.0.0.3:4222")
	require.Contains(t, out, "nats://10.0.0.4:4222")

	red := config.Redact(cc).(ClusterConfig)
	require.Equal(t, []string{"nats://[redacted]@10.0.0.3:4222", "nats://10.0.0.4:4222"}, red.URLs)
	require.Equal(t, "nats://bob:pa55@10.0.0.3:4222", cc.URLs[0], "original unchanged")
}

func TestRedactUserinfo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                  "",
		"nats://10.0.0.1:4222":              "nats://10.0.0.1:4222",
		"nats://u:p@h:1":                    "nats://[redacted]@h:1",
		"nats://tok@h:1,nats://h2:2":        "nats://[redacted]@h:1,nats://h2:2",
		"postgres://u:p@db/x?sslmode=false": "postgres://[redacted]@db/x?sslmode=false",
		"u:hunter2@127.0.0.1:1":             "[redacted]@127.0.0.1:1",
		"nats://u:p@ss@h:1":                 "nats://[redacted]@h:1",
		"http://h/path@x":                   "http://h/path@x",
	} {
		require.Equal(t, want, config.RedactUserinfo(in), in)
	}
	msg := `connect nats://[redacted]@h:1: parse "nats://u:hunt%zzer2@h:1": invalid URL escape "%zz"`
	require.Equal(t, `connect nats://[redacted]@h:1: parse "nats://[redacted]@h:1": invalid URL escape "%zz"`, config.RedactURLsIn(msg))
}

// Pools is a map section whose own Validate repeats its entries' checks
// with "<entry>.<key>: " prefixes, as worker.Config does.
type Pools map[string]PoolConfig

func (p Pools) Validate() error {
	var errs []error
	for name, c := range p {
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", name, err))
		}
	}
	return errors.Join(errs...)
}

// TestDottedValidateKeysLandOnTheirKey: "entry.key: problem" from a map's
// Validate lands on the entry's key, once, attributed to the layer that
// set that key (not to a later layer that set a sibling).
func TestDottedValidateKeysLandOnTheirKey(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("pools", Pools{}))
	file := writeFile(t, "p.yaml", "pools:\n  orders: {concurrency: -1}\n  mail: {concurrency: -2}\n")
	_, err := config.Load(config.Options{Registry: r, Files: []string{file},
		Environ: []string{"PLBA_POOLS__OTHER__CONCURRENCY=2"}})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	var lines []string
	for _, p := range cerr.Problems {
		lines = append(lines, p.Error())
	}
	require.ElementsMatch(t, []string{
		file + ": pools.orders.concurrency: must be at least 1 (got -1)",
		file + ": pools.mail.concurrency: must be at least 1 (got -2)",
	}, lines)
}

// TestEmptyYAMLKey: an empty key in a file is reported at the mapping
// that holds it, not taken for its parent.
func TestEmptyYAMLKey(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "e.yaml", "server: {\"\": 5, port: 2}\n\"\": {a: 1}\n")
	_, err := load(t, config.Options{Files: []string{file}})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Len(t, cerr.Problems, 2, "%v", err)
	require.ErrorContains(t, err, file+`: server: empty key ("") in a mapping`)
	require.ErrorContains(t, err, file+`: empty key ("") in a mapping`)
}

// errPkgInvalid is a package's own invalid-config sentinel.
var errPkgInvalid = errors.New("pkg: invalid config")

type WrappedConfig struct {
	Mode string `koanf:"mode"`
}

func (c WrappedConfig) Validate() error {
	if c.Mode != "a" {
		return config.InvalidAs(errPkgInvalid, "mode", "must be a")
	}
	return nil
}

// TestWrappedProblemLandsOnItsKey: a Validate error made with InvalidAs
// matches the package's sentinel and is reported by Load at its key,
// without the sentinel's prefix.
func TestWrappedProblemLandsOnItsKey(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("pkg", WrappedConfig{Mode: "a"}))
	_, err := config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{"pkg.mode=b"}})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Len(t, cerr.Problems, 1)
	require.Equal(t, "pkg.mode", cerr.Problems[0].Key)
	require.Equal(t, "must be a", cerr.Problems[0].Msg)
	verr := WrappedConfig{Mode: "b"}.Validate()
	require.ErrorIs(t, verr, errPkgInvalid)
	require.EqualError(t, verr, "pkg: invalid config: mode: must be a")
}
