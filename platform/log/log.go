// Package log builds the host's zap logger from the "log" configuration
// section, routes fx's own events through it, and carries log fields on a
// context so that every line written under that context (a task, a source
// poll) names what it belongs to.
//
// The level can be changed while the host runs through the zap.AtomicLevel
// the module provides (Level.SetLevel, or its ServeHTTP handler).
package log

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/plba/plba/platform/config"
)

// Section is the name of the configuration section this package reads.
const Section = "log"

// Declared is the "log" section, declared with its defaults; the platform
// provides it to the graph (Declared.Provide).
var Declared = config.Declare(Section, DefaultConfig())

// Formats the "format" key accepts.
const (
	FormatJSON    = "json"
	FormatConsole = "console"
)

// Config is the "log" configuration section.
type Config struct {
	// Level is the minimum level written: debug, info, warn or error.
	// Default info. It can be changed at runtime through the module's
	// zap.AtomicLevel.
	Level string `koanf:"level"`
	// Format is "json" (one object a line, for machines) or "console"
	// (aligned text, for people). Default json.
	Format string `koanf:"format"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config { return Config{Level: "info", Format: FormatJSON} }

// ErrLevel is returned by ParseLevel for anything but the four levels.
var ErrLevel = errors.New("log: level must be one of debug, info, warn, error")

// ParseLevel parses one of the levels a host runs at: debug, info, warn or
// error (in any case). The more severe zap levels (dpanic, panic, fatal)
// are refused: running at them would silence every error.
func ParseLevel(s string) (zapcore.Level, error) {
	lvl, err := zapcore.ParseLevel(s)
	if err != nil || s == "" || lvl < zapcore.DebugLevel || lvl > zapcore.ErrorLevel {
		return 0, fmt.Errorf("%w (got %q)", ErrLevel, s)
	}
	return lvl, nil
}

// Validate checks the section.
func (c Config) Validate() error {
	var ps config.Problems
	if _, err := ParseLevel(c.Level); err != nil {
		ps.Add("level", "must be one of debug, info, warn, error (got %q)", c.Level)
	}
	if c.Format != FormatJSON && c.Format != FormatConsole {
		ps.Add("format", "must be %q or %q (got %q)", FormatJSON, FormatConsole, c.Format)
	}
	return ps.Err()
}

// New returns a logger writing cfg's format to w (os.Stderr when nil),
// and the atomic level that controls it. Every line has a logger name
// (RootName when the logger has none); the console format aligns its
// columns; structured values keep <, > and & as they are. Call Sync on the logger before
// the process exits.
func New(cfg Config, w io.Writer) (*zap.Logger, zap.AtomicLevel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("log: %w", err)
	}
	lvl, _ := ParseLevel(cfg.Level)
	level := zap.NewAtomicLevelAt(lvl)
	console := strings.EqualFold(cfg.Format, FormatConsole)
	ec := encoderConfig(console)
	var enc zapcore.Encoder
	if console {
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	if w == nil {
		w = os.Stderr
	}
	core := namedCore{zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)}
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))), level, nil
}

// Params are the inputs of NewFromConfig.
type Params struct {
	fx.In

	Config Config
	// Output receives the lines; os.Stderr when not provided.
	Output io.Writer `name:"log.output" optional:"true"`
	LC     fx.Lifecycle
}

// Result is what NewFromConfig provides: the logger and its level.
type Result struct {
	fx.Out

	Logger *zap.Logger
	Level  zap.AtomicLevel
}

// NewFromConfig builds the host logger and syncs it when the host stops.
func NewFromConfig(p Params) (Result, error) {
	l, lvl, err := New(p.Config, p.Output)
	if err != nil {
		return Result{}, err
	}
	p.LC.Append(fx.StopHook(func() {
		_ = l.Sync() // stderr cannot always be synced (a pipe, a terminal); nothing is lost.
	}))
	return Result{Logger: l, Level: lvl}, nil
}

// Module provides *zap.Logger and zap.AtomicLevel from the "log" section
// (which the graph must provide, e.g. with Declared.Provide()).
var Module = fx.Module("log", fx.Provide(NewFromConfig))

// FxLogger routes fx's own events through the host logger at debug level,
// failures included: fx returns every failure to the caller of New, Start
// or Stop, which reports it (the host as one line on stderr), so at info
// the failure is not printed twice; at debug fx's events add where it
// happened.
func FxLogger() fx.Option {
	return fx.WithLogger(func(l *zap.Logger) fxevent.Logger {
		zl := &fxevent.ZapLogger{Logger: l.Named("fx")}
		zl.UseLogLevel(zapcore.DebugLevel)
		zl.UseErrorLevel(zapcore.DebugLevel)
		return zl
	})
}

type fieldsKey struct{}

// inlineFields is how many fields a context carries without a second
// allocation: enough for a task's fields (trace, span, task id, kind,
// queue, attempt).
const inlineFields = 6

// fieldsCtx carries log fields. It is its own context type (embedding the
// parent) with the fields inline, so that With costs one allocation on the
// task path instead of three (slice, WithValue, interface).
type fieldsCtx struct {
	context.Context
	fields []zap.Field
	inline [inlineFields]zap.Field
}

// Value returns c for the package's key and defers to the parent
// otherwise.
func (c *fieldsCtx) Value(key any) any {
	if _, ok := key.(fieldsKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// With returns a context carrying fields in addition to those ctx already
// carries. Every logger derived from it with FromContext writes them.
func With(ctx context.Context, fields ...zap.Field) context.Context {
	if len(fields) == 0 {
		return ctx
	}
	prev := Fields(ctx)
	c := &fieldsCtx{Context: ctx}
	if n := len(prev) + len(fields); n <= inlineFields {
		c.fields = c.inline[:0:n]
	} else {
		c.fields = make([]zap.Field, 0, n)
	}
	c.fields = append(append(c.fields, prev...), fields...)
	return c
}

// FieldsCarrier is a context value that carries log fields itself. A
// package that already puts one value of its own on a hot path's context
// (telemetry's delivery, on every task) makes that value answer
// IsFieldsKey keys with itself, and so adds its fields without the second
// allocation a With would cost.
type FieldsCarrier interface {
	// LogFields returns every field the context carries: its parent's
	// (Fields of the parent context) and its own, oldest first.
	LogFields() []zap.Field
}

// IsFieldsKey reports whether key is the context key Fields looks up; a
// FieldsCarrier's Value method answers it with the carrier.
func IsFieldsKey(key any) bool {
	_, ok := key.(fieldsKey)
	return ok
}

// Fields returns the fields With (or a FieldsCarrier) put on ctx and its
// ancestors, oldest first. The slice must not be modified.
func Fields(ctx context.Context) []zap.Field {
	if ctx == nil {
		return nil
	}
	switch v := ctx.Value(fieldsKey{}).(type) {
	case *fieldsCtx:
		return v.fields
	case FieldsCarrier:
		return v.LogFields()
	}
	return nil
}

// FromContext returns base with the fields ctx carries; base itself when
// there are none, and a no-op logger when base is nil.
func FromContext(ctx context.Context, base *zap.Logger) *zap.Logger {
	if base == nil {
		base = zap.NewNop()
	}
	fs := Fields(ctx)
	if len(fs) == 0 {
		return base
	}
	return base.With(fs...)
}
