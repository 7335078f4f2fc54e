package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	plog "github.com/plba/plba/platform/log"
)

// LogLevelPath is where the log level is read (GET) and changed (PUT).
const LogLevelPath = "/admin/v1/loglevel"

// LogLevel is the JSON body of GET and PUT LogLevelPath.
type LogLevel struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
}

// Error is the JSON body of a failed admin request.
type Error struct {
	Error string `json:"error"`
}

// maxLevelBody bounds the body of PUT LogLevelPath.
const maxLevelBody = 1 << 10

// LogLevelRoutes returns the routes that read and change level at
// runtime:
//
//	GET LogLevelPath              -> 200 {"level":"info"}
//	PUT LogLevelPath {"level":"debug"} -> 200 {"level":"debug"}
//
// A body that is not exactly one such JSON object (nothing but white
// space after it), or names another level, gets 400, one over 1 KiB gets
// 413, and the level stays as it was. Every change is logged on log (nil: not
// logged) at warn with the old and new level, while the lower of the two
// is in effect, so that the line is written either way.
func LogLevelRoutes(level zap.AtomicLevel, log *zap.Logger) []Route {
	if log == nil {
		log = zap.NewNop()
	}
	get := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, LogLevel{Level: level.Level().String()})
	})
	put := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read one byte past the limit: a body cut at the limit would hide
		// whatever follows the object from decodeLevel's check.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxLevelBody+1))
		fail := func(code int, err error) {
			Audit(r, AuditEntry{Action: "loglevel.set", Target: "log", Error: err.Error()})
			WriteJSON(w, code, Error{Error: err.Error()})
		}
		if err != nil {
			fail(http.StatusBadRequest, fmt.Errorf("admin: log level: read body: %w", err))
			return
		}
		if len(body) > maxLevelBody {
			fail(http.StatusRequestEntityTooLarge, fmt.Errorf("admin: log level: body larger than %d bytes", maxLevelBody))
			return
		}
		lvl, err := decodeLevel(bytes.NewReader(body))
		if err != nil {
			fail(http.StatusBadRequest, err)
			return
		}
		old := level.Level()
		Audit(r, AuditEntry{Action: "loglevel.set", Target: "log",
			Params: map[string]any{"from": old.String(), "to": lvl.String()}})
		audit := func() {
			log.Warn("log level changed", zap.Stringer("from", old), zap.Stringer("to", lvl),
				zap.String("remote", r.RemoteAddr))
		}
		switch {
		case lvl > old: // raising: write it before the new level hides it
			audit()
			level.SetLevel(lvl)
		case lvl < old:
			level.SetLevel(lvl)
			audit()
		}
		WriteJSON(w, http.StatusOK, LogLevel{Level: lvl.String()})
	})
	return []Route{
		{Pattern: "GET " + LogLevelPath, Role: RoleViewer, Handler: get},
		{Pattern: "PUT " + LogLevelPath, Role: RoleOperator, Handler: put},
	}
}

func decodeLevel(r io.Reader) (zapcore.Level, error) {
	var body LogLevel
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return 0, fmt.Errorf("admin: log level: body must be {\"level\": \"<level>\"}: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, errors.New("admin: log level: body must be one JSON object, nothing after it")
	}
	if body.Level == "" {
		return 0, fmt.Errorf("admin: log level: \"level\" is empty")
	}
	lvl, err := plog.ParseLevel(body.Level)
	if err != nil {
		return 0, fmt.Errorf("admin: %w", err)
	}
	return lvl, nil
}
