package log_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	plog "github.com/plba/plba/platform/log"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  plog.Config
		want []string
	}{
		{name: "defaults", cfg: plog.DefaultConfig()},
		{name: "console debug", cfg: plog.Config{Level: "debug", Format: "console"}},
		{name: "bad level", cfg: plog.Config{Level: "loud", Format: "json"}, want: []string{"level", "loud"}},
		{name: "empty level", cfg: plog.Config{Format: "json"}, want: []string{"level"}},
		{name: "bad format", cfg: plog.Config{Level: "info", Format: "xml"}, want: []string{"format", "xml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestJSONLevelAndRuntimeChange(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, lvl, err := plog.New(plog.Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)
	l.Debug("hidden")
	l.Info("shown", zap.Int("n", 1))
	lvl.SetLevel(zapcore.DebugLevel)
	l.Debug("now shown")
	lvl.SetLevel(zapcore.WarnLevel)
	l.Info("hidden again")

	lines := buf.lines()
	require.Len(t, lines, 2, lines)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "shown", rec["msg"])
	require.Equal(t, "info", rec["level"])
	require.EqualValues(t, 1, rec["n"])
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, "now shown", rec["msg"])
}

func TestConsoleFormat(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, _, err := plog.New(plog.Config{Level: "info", Format: "console"}, &buf)
	require.NoError(t, err)
	l.Info("hello", zap.String("who", "world"))
	line := buf.lines()[0]
	require.Contains(t, line, "INFO")
	require.Contains(t, line, "hello")
	require.Contains(t, line, `"who": "world"`)
	require.False(t, json.Valid([]byte(line)), "console lines are not JSON")
}

func TestContextFields(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	base, _, err := plog.New(plog.Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)

	require.Same(t, base, plog.FromContext(context.Background(), base), "no fields: the base logger itself")
	require.NotNil(t, plog.FromContext(context.Background(), nil), "nil base: a no-op logger")

	ctx := plog.With(context.Background(), zap.String("task_id", "t1"))
	ctx = plog.With(ctx, zap.String("queue", "q"))
	child := plog.With(ctx, zap.Int("attempt", 2))
	plog.FromContext(child, base).Info("in task")
	plog.FromContext(ctx, base).Info("upstream")

	lines := buf.lines()
	require.Len(t, lines, 2)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "t1", rec["task_id"])
	require.Equal(t, "q", rec["queue"])
	require.EqualValues(t, 2, rec["attempt"])
	rec = map[string]any{}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, "t1", rec["task_id"])
	require.NotContains(t, rec, "attempt", "a child's fields do not leak to its parent")
}

func TestModuleRoutesFxEventsAtDebug(t *testing.T) {
	t.Parallel()
	run := func(level string) []string {
		var buf syncBuffer
		app := fxtest.New(t,
			fx.Supply(plog.Config{Level: level, Format: "json"}),
			fx.Provide(fx.Annotate(func() io.Writer { return &buf }, fx.ResultTags(`name:"log.output"`))),
			plog.Module,
			plog.FxLogger(),
			fx.Invoke(func(l *zap.Logger) { l.Info("app line") }),
		)
		app.RequireStart().RequireStop()
		return buf.lines()
	}
	info := run("info")
	require.Len(t, info, 1, "at info only the application's line: fx events are debug")
	require.Contains(t, info[0], "app line")

	debug := run("debug")
	require.Greater(t, len(debug), 3)
	joined := strings.Join(debug, "\n")
	require.Contains(t, joined, `"logger":"fx"`)
	require.Contains(t, joined, "provided")
}

func TestWithAllocatesOnce(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c := plog.With(ctx, zap.String("trace_id", "t"), zap.String("span_id", "s"), zap.String("task_id", "i"),
			zap.String("task_kind", "k"), zap.String("queue", "q"), zap.Int("attempt", 1))
		_ = plog.Fields(c)
	})
	require.LessOrEqual(t, allocs, 1.0)
}

// carrierCtx is a context value that carries its own field, the way
// telemetry's delivery does.
type carrierCtx struct {
	context.Context
	own zap.Field
}

func (c *carrierCtx) Value(k any) any {
	if plog.IsFieldsKey(k) {
		return c
	}
	return c.Context.Value(k)
}

func (c *carrierCtx) LogFields() []zap.Field {
	return append(append([]zap.Field(nil), plog.Fields(c.Context)...), c.own)
}

func TestFieldsCarrier(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	base, _, err := plog.New(plog.Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)
	up := plog.With(context.Background(), zap.String("source", "imap"))
	ctx := &carrierCtx{Context: up, own: zap.String("task_id", "t7")}
	inner := plog.With(ctx, zap.Int("attempt", 3))
	plog.FromContext(inner, base).Info("handled")
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(buf.lines()[0]), &rec))
	require.Equal(t, "imap", rec["source"], "the carrier's parent fields")
	require.Equal(t, "t7", rec["task_id"], "the carrier's own field")
	require.EqualValues(t, 3, rec["attempt"], "fields added below the carrier")
}

func TestParseLevel(t *testing.T) {
	for _, ok := range []string{"debug", "info", "warn", "error", "INFO"} {
		_, err := plog.ParseLevel(ok)
		require.NoError(t, err, ok)
	}
	for _, bad := range []string{"", "loud", "fatal", "panic", "dpanic"} {
		_, err := plog.ParseLevel(bad)
		require.ErrorIs(t, err, plog.ErrLevel, bad)
	}
	require.Error(t, plog.Config{Level: "fatal", Format: plog.FormatJSON}.Validate(), "a host cannot run at fatal")
}

// TestEveryLineNamesItsLogger: a line from a logger without a name (the
// host's own) is named RootName, in both formats; named loggers keep
// their names.
func TestEveryLineNamesItsLogger(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, _, err := plog.New(plog.Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)
	l.Info("root")
	l.With(zap.Int("n", 1)).Info("root with fields")
	l.Named("pool").Info("named")
	var names []string
	for _, line := range buf.lines() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		names = append(names, rec["logger"].(string))
	}
	require.Equal(t, []string{plog.RootName, plog.RootName, "pool"}, names)
}

// TestConsoleColumnsAlign: in the console format the message starts at
// the same column on every line, whatever the level, logger name (or
// none) and caller.
func TestConsoleColumnsAlign(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, _, err := plog.New(plog.Config{Level: "debug", Format: "console"}, &buf)
	require.NoError(t, err)
	l.Info("MSG one")
	l.Named("jetstream").Warn("MSG two", zap.String("k", "v"))
	l.Named("fx").Error("MSG three")
	l.Named("source").Debug("MSG four")
	lines := buf.lines()
	require.Len(t, lines, 4)
	col := strings.Index(lines[0], "MSG")
	require.Positive(t, col)
	for _, line := range lines {
		require.Equal(t, col, strings.Index(line, "MSG"), "misaligned:\n%s", strings.Join(lines, "\n"))
		require.NotContains(t, line, "\t")
	}
	require.Contains(t, lines[0], "INFO   "+plog.RootName)
}

// TestJSONKeepsAngleBrackets: < > and & stay as they are in strings and in
// structured values (a mail address, a query), instead of \u003c escapes.
func TestJSONKeepsAngleBrackets(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l, _, err := plog.New(plog.Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)
	from := "Jane <jane@example.com> & co"
	l.Info("mail", zap.String("from", from), zap.Any("mail", map[string]string{"from": from}),
		zap.Error(errors.New("bad address "+from)))
	line := buf.lines()[0]
	require.NotContains(t, line, `\u003c`)
	require.Equal(t, 3, strings.Count(line, "Jane <jane@example.com> & co"), line)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &rec), "still JSON")
	require.Equal(t, from, rec["from"])
}
