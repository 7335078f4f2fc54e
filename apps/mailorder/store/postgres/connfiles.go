package postgres

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/plba/plba/platform/config"
)

// fileSettings are the connection settings that name files pgx reads while
// it parses a connection string (pgx.ParseConfig), before any connection:
// a named pipe there blocks the parse (and so `config validate` and the
// start) until a writer comes, a device or a runaway file feeds it until
// memory runs out.
var fileSettings = []string{"sslrootcert", "sslcert", "sslkey", "passfile", "servicefile"}

// maxSettingFile is the largest file a connection setting may name (a CA
// bundle is a few hundred KiB).
const maxSettingFile = 4 << 20

// errNotConnString is the problem with a URL that does not parse; it does
// not echo the URL, which may hold a password.
var errNotConnString = errors.New("not a valid PostgreSQL connection string")

// parseURL parses the connection string s as pgx.ParseConfig does, but
// first checks that every file the parse would read (named by s, by the
// PG* environment variables, by a service file's entry, or the defaults
// under the home directory) is a regular file of at most maxSettingFile
// bytes; a file that does not exist is left to pgx, which reports it or
// does without it, and so is a passfile pgx does without (a directory,
// the null device). The parse is told the keys s was read to hold, so
// that a file setting this reading missed fails the parse before pgx
// opens any file.
func parseURL(s string) (*pgx.ConnConfig, error) {
	conn, err := connSettings(s)
	if err != nil {
		return nil, errNotConnString
	}
	keys := slices.Collect(maps.Keys(conn))
	// A URL's user information, hosts and database are keys of their own.
	keys = append(keys, "user", "password", "host", "port", "database")
	settings := mergeSettings(homeSettings(), envSettings(), conn)
	// pgx reads the service file for a service, even an empty one (it
	// looks the empty name up), and only then.
	service, withService := settings["service"]
	if withService {
		entry, err := serviceEntry(settings["servicefile"], service)
		if err != nil {
			return nil, err
		}
		settings = mergeSettings(homeSettings(), envSettings(), entry, conn)
	}
	for _, key := range fileSettings {
		name := settings[key]
		if name == "" || (key == "sslrootcert" && name == "system") || (key == "passfile" && settings["password"] != "") ||
			(key == "servicefile" && !withService) {
			continue // not read
		}
		if key == "passfile" && passfileDoneWithout(name) {
			continue
		}
		if err := checkSettingFile(key, name); err != nil {
			return nil, err
		}
	}
	cc, err := pgx.ParseConfigWithOptions(s, pgx.ParseConfigOptions{ParseConfigOptions: pgconn.ParseConfigOptions{ConnStringAllowedKeys: keys}})
	if err != nil {
		return nil, errNotConnString
	}
	return cc, nil
}

// checkSettingFile returns an error naming key and the file when name
// exists and is not a regular file of at most maxSettingFile bytes.
func checkSettingFile(key, name string) error {
	if err := config.RegularFile(name); err != nil {
		return fmt.Errorf("%s %w", key, err)
	}
	if fi, err := os.Stat(name); err == nil && fi.Size() > maxSettingFile {
		return fmt.Errorf("%s %s is larger than %d MiB", key, name, maxSettingFile>>20)
	}
	return nil
}

// passfileDoneWithout reports whether name is a passfile pgx does
// without rather than refuses: a directory (pgx ignores a passfile it
// cannot read; a bind mount of a missing ~/.pgpass makes one) or the null
// device (PGPASSFILE=/dev/null: no entries). Neither blocks the parse.
func passfileDoneWithout(name string) bool {
	fi, err := os.Stat(name)
	if err != nil {
		return false
	}
	if fi.IsDir() {
		return true
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// serviceEntry reads the entry service of the service file name, as pgx
// does (github.com/jackc/pgservicefile), after checking the file.
func serviceEntry(name, service string) (map[string]string, error) {
	if name == "" {
		return nil, nil // pgx reports the service it cannot find
	}
	if err := checkSettingFile("servicefile", name); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil // pgx reports it
	}
	defer f.Close()
	entries := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(io.LimitReader(f, maxSettingFile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			entries[line[1:len(line)-1]] = cur
		case cur != nil:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, errNotConnString
			}
			cur[canonicalKey(strings.TrimSpace(k))] = strings.TrimSpace(v)
		default:
			return nil, errNotConnString
		}
	}
	if sc.Err() != nil {
		return nil, errNotConnString
	}
	return entries[service], nil
}

// homeSettings are pgx's defaults for the file settings, under the home
// directory.
func homeSettings() map[string]string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	s := map[string]string{
		"passfile":    filepath.Join(home, ".pgpass"),
		"servicefile": filepath.Join(home, ".pg_service.conf"),
	}
	cert, key := filepath.Join(home, ".postgresql", "postgresql.crt"), filepath.Join(home, ".postgresql", "postgresql.key")
	if exists(cert) && exists(key) {
		s["sslcert"], s["sslkey"] = cert, key
	}
	if root := filepath.Join(home, ".postgresql", "root.crt"); exists(root) {
		s["sslrootcert"] = root
	}
	return s
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// envSettings are the settings pgx takes from the environment that bear
// on the files it reads.
func envSettings() map[string]string {
	s := map[string]string{}
	for env, key := range map[string]string{
		"PGPASSWORD": "password", "PGPASSFILE": "passfile", "PGSSLKEY": "sslkey", "PGSSLCERT": "sslcert",
		"PGSSLROOTCERT": "sslrootcert", "PGSERVICE": "service", "PGSERVICEFILE": "servicefile",
	} {
		if v := os.Getenv(env); v != "" {
			s[key] = v
		}
	}
	return s
}

func mergeSettings(layers ...map[string]string) map[string]string {
	s := map[string]string{}
	for _, l := range layers {
		maps.Copy(s, l)
	}
	return s
}
