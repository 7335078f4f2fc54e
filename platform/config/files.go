package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
)

// MaxFileSize is the largest configuration or secret file ReadFile reads:
// a name that points at a device or a runaway file fails with a message
// instead of exhausting memory.
const MaxFileSize = 16 << 20

// ReadFile reads the file name, at most MaxFileSize bytes.
func ReadFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d MiB", MaxFileSize>>20)
	}
	return b, nil
}

// RegularFile returns an error naming what name is when it exists and is
// not a regular file (a link is followed): a named pipe blocks a read
// until a writer comes, a device may feed it for ever, a directory or a
// socket fails it with a less clear error. A name it cannot stat
// (missing, unreadable) is left to whoever opens it, which reports why
// or does without it: nil.
func RegularFile(name string) error {
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch m := fi.Mode(); {
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO), not a regular file"
	case m&fs.ModeDevice != 0:
		what = "a device, not a regular file"
	case m.IsDir():
		what = "a directory, not a regular file"
	case m&fs.ModeSocket != 0:
		what = "a socket, not a regular file"
	}
	return fmt.Errorf("%s is %s", name, what)
}

func parseYAML(p *yaml.YAML, b []byte) (m map[string]any, err error) {
	m, err = p.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	return normalize(m).(map[string]any), nil
}

// yamlMessage turns "yaml: line 3: did not find expected key" into
// "line 3: did not find expected key", on one line. The parser quotes the
// offending text in backquotes ("cannot unmarshal !!str `hunter2`"); that
// is left out, since it may be a secret given to --config by mistake.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = yamlQuoted.ReplaceAllString(msg, "")
	fields := strings.Fields(msg)
	return "invalid YAML: " + strings.Join(fields, " ")
}

// yamlQuoted matches the parser's quotation of input text.
var yamlQuoted = regexp.MustCompile("`[^`]*`")
