package log

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// RootName is the logger name of a line logged without one (the host's
// own logger): every line names where it came from.
const RootName = "host"

// Column widths of the console format. A value longer than its column
// pushes the rest of its line only.
const (
	levelWidth  = len("ERROR")
	nameWidth   = 10
	callerWidth = 26
)

// encoderConfig returns the encoder configuration of format: ISO 8601
// times; for people (console) fixed-width level, logger and caller columns
// separated by two spaces (tabs would align only the names that happen to
// fit the same tab stop). zap escapes no <, > or & in JSON, neither in
// strings nor in structured values (its reflected encoder turns HTML
// escaping off): TestJSONKeepsAngleBrackets holds it to that.
func encoderConfig(console bool) zapcore.EncoderConfig {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	if console {
		ec.ConsoleSeparator = "  "
		ec.EncodeLevel = func(l zapcore.Level, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(pad(l.CapitalString(), levelWidth))
		}
		ec.EncodeName = func(n string, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(pad(n, nameWidth))
		}
		ec.EncodeCaller = func(c zapcore.EntryCaller, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(pad(c.TrimmedPath(), callerWidth))
		}
	}
	return ec
}

// pad returns s filled with spaces to width.
func pad(s string, width int) string { return fmt.Sprintf("%-*s", width, s) }

// namedCore gives a line logged without a logger name the name RootName.
type namedCore struct {
	zapcore.Core
}

func (c namedCore) With(fields []zapcore.Field) zapcore.Core {
	return namedCore{c.Core.With(fields)}
}

func (c namedCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c namedCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if e.LoggerName == "" {
		e.LoggerName = RootName
	}
	return c.Core.Write(e, fields)
}
