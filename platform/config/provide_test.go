package config_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
)

// mailbox is a section type two modules use.
type mailbox struct {
	Host  string `koanf:"host"`
	Port  int    `koanf:"port"`
	Inbox string `koanf:"inbox"`
}

func (m mailbox) Validate() error {
	if m.Host == "" {
		return config.Invalid("host", "required")
	}
	return nil
}

// pools is a section whose entries take what they leave out from the
// "default" entry, as the platform's "workers" section does.
type pools map[string]struct {
	Size int `koanf:"size"`
}

func (p pools) WithDefaults() pools {
	out := pools{}
	for n, e := range p {
		if e.Size == 0 {
			e.Size = p["default"].Size
		}
		out[n] = e
	}
	return out
}

var (
	sales   = config.Declare("provide_test_sales", mailbox{Port: 993, Inbox: "INBOX"})
	support = config.Declare("provide_test_support", mailbox{Port: 993, Inbox: "Support"})
	poolSec = config.Declare("provide_test_pools", pools{"default": {Size: 8}})
)

func loadSets(t *testing.T, partial bool, sets ...string) (*config.Config, error) {
	t.Helper()
	return config.Load(config.Options{Environ: []string{}, Sets: sets, Partial: partial})
}

// Two modules each provide a section of the same type: each module's
// constructors get their own, and the whole graph reaches both by tag.
func TestProvideSameTypeTwoModules(t *testing.T) {
	cfg, err := loadSets(t, false, "provide_test_sales.host=a.example", "provide_test_support.host=b.example")
	require.NoError(t, err)
	var gotSales, gotSupport, byTag string
	app := fx.New(fx.NopLogger, fx.Supply(cfg),
		fx.Module("sales", sales.Provide(), fx.Invoke(func(m mailbox) { gotSales = m.Host + "/" + m.Inbox })),
		fx.Module("support", support.Provide(), fx.Invoke(func(m mailbox) { gotSupport = m.Host + "/" + m.Inbox })),
		fx.Invoke(fx.Annotate(func(m mailbox) { byTag = m.Host }, fx.ParamTags(config.Tag("provide_test_support")))),
	)
	require.NoError(t, app.Err())
	require.Equal(t, "a.example/INBOX", gotSales)
	require.Equal(t, "b.example/Support", gotSupport)
	require.Equal(t, "b.example", byTag)
}

// One call declares and provides; declaring it again the same way (a
// module built twice) is no conflict, another default is.
func TestProvideDeclaresOnce(t *testing.T) {
	opt := config.Provide("provide_test_once", mailbox{Host: "h", Port: 1})
	require.NotNil(t, opt)
	require.NotPanics(t, func() { config.Provide("provide_test_once", mailbox{Host: "h", Port: 1}) })
	require.Panics(t, func() { config.Provide("provide_test_once", mailbox{Host: "other", Port: 1}) })
	require.Contains(t, config.DefaultRegistry.Names(), "provide_test_once")
}

// A section declared after the configuration was loaded fails the graph
// with a message saying where to declare it.
func TestProvideDeclaredTooLate(t *testing.T) {
	cfg, err := config.Load(config.Options{Environ: []string{}, Registry: config.NewRegistry()})
	require.NoError(t, err)
	app := fx.New(fx.NopLogger, fx.Supply(cfg), sales.Provide())
	require.ErrorContains(t, app.Err(), "declare it at package level")
	require.True(t, errors.Is(app.Err(), config.ErrUnknownSection))
}

// ReportProvided names the sections the graph's modules provide, even
// when a later invocation fails.
func TestReportProvided(t *testing.T) {
	cfg, err := loadSets(t, false, "provide_test_sales.host=a")
	require.NoError(t, err)
	var got []string
	app := fx.New(fx.NopLogger, config.ReportProvided(func(s []string) { got = s }), fx.Supply(cfg),
		fx.Module("sales", sales.Provide()),
		fx.Module("pools", poolSec.Provide()),
		fx.Module("broken", support.Provide()), // host missing: fails
	)
	require.Error(t, app.Err())
	require.Equal(t, []string{"provide_test_pools", "provide_test_sales", "provide_test_support"}, got)
}
