package postgres_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/postgres"
)

// fifo makes a named pipe in dir. Should a read block on it (the defect
// under test), the test's cleanup opens it for writing and closes it, so
// the blocked reader sees the end of the file and its goroutine ends.
func fifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, syscall.Mkfifo(p, 0o600))
	t.Cleanup(func() {
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	return p
}

// validateWithin runs Validate and fails the test when it has not returned
// after a generous deadline.
func validateWithin(t *testing.T, c postgres.Config) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.WithDefaults().Validate() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Validate of %q has not returned after 10s", c.URL)
		return nil
	}
}

// The connection string's TLS settings, passfile and service file name
// files that pgx.ParseConfig reads while Validate parses the URL: one
// naming a named pipe blocked `host config validate` and the start for
// ever (and a device such as /dev/zero read until memory ran out). Each
// such file is now refused with a problem naming its setting and path,
// wherever it is named: in the URL (either form), in the environment, in
// a service file's entry.
func TestConnStringFilesMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir) // no ~/.pgpass or ~/.postgresql of the machine's
	for _, env := range []string{"PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGPASSWORD"} {
		t.Setenv(env, "")
	}
	pipe := fifo(t, dir, "pipe")
	spaced := filepath.Join(dir, "a dir")
	require.NoError(t, os.Mkdir(spaced, 0o700))
	spacedPipe := fifo(t, spaced, "key pipe")
	services := filepath.Join(dir, "pg_service.conf")
	require.NoError(t, os.WriteFile(services, []byte("# services\n[orders]\nhost=127.0.0.1\nsslrootcert="+pipe+"\n"), 0o600))
	huge := filepath.Join(dir, "huge.pem")
	require.NoError(t, os.WriteFile(huge, nil, 0o600))
	require.NoError(t, os.Truncate(huge, 64<<20)) // sparse: no disk used
	cert := filepath.Join(dir, "client.crt")
	require.NoError(t, os.WriteFile(cert, []byte("not a certificate"), 0o600))

	for _, tc := range []struct {
		name, url, env, val, want string
	}{
		{"URL sslrootcert", "postgres://u:pw@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=" + pipe, "", "", "sslrootcert " + pipe + " is a named pipe (FIFO)"},
		{"URL, percent-encoded", "postgres://u:pw@127.0.0.1/db?sslrootcert=" + strings.ReplaceAll(spacedPipe, " ", "%20"), "", "", "sslrootcert " + spacedPipe + " is a named pipe"},
		{"keyword sslkey, quoted", "host=127.0.0.1 user=u password=pw sslcert=" + cert + " sslkey='" + spacedPipe + "'", "", "", "sslkey " + spacedPipe + " is a named pipe"},
		{"URL passfile", "postgres://u@127.0.0.1/db?passfile=" + pipe, "", "", "passfile " + pipe + " is a named pipe"},
		{"environment", "postgres://u:pw@127.0.0.1/db", "PGSSLROOTCERT", pipe, "sslrootcert " + pipe + " is a named pipe"},
		{"service file entry", "postgres://u:pw@127.0.0.1/db?service=orders&servicefile=" + services, "", "", "sslrootcert " + pipe + " is a named pipe"},
		{"service file itself", "service=orders servicefile=" + pipe, "", "", "servicefile " + pipe + " is a named pipe"},
		{"device", "postgres://u:pw@127.0.0.1/db?sslrootcert=/dev/zero", "", "", "sslrootcert /dev/zero is a device"},
		{"huge file", "postgres://u:pw@127.0.0.1/db?sslrootcert=" + huge, "", "", "sslrootcert " + huge + " is larger than 4 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, tc.val)
			}
			err := validateWithin(t, postgres.Config{URL: tc.url})
			require.Error(t, err)
			require.Contains(t, err.Error(), "url: "+tc.want)
			require.NotContains(t, err.Error(), "pw@")
		})
	}

	// Files that are regular, or not there, or not read, are left to pgx.
	passfile := filepath.Join(dir, "pgpass")
	require.NoError(t, os.WriteFile(passfile, []byte("*:*:*:u:secret\n"), 0o600))
	for _, url := range []string{
		"postgres://u@127.0.0.1/db?sslmode=disable&passfile=" + passfile,
		"postgres://u:pw@127.0.0.1/db?passfile=" + pipe, // a password given: the passfile is not read
		"postgres://u:pw@127.0.0.1/db?sslmode=verify-full&sslrootcert=system",
		"host=127.0.0.1 user=u sslmode=disable passfile=" + filepath.Join(dir, "missing"),
	} {
		require.NoError(t, validateWithin(t, postgres.Config{URL: url}), url)
	}
	err := validateWithin(t, postgres.Config{URL: "postgres://u:pw@127.0.0.1/db?sslrootcert=" + filepath.Join(dir, "missing")})
	require.ErrorContains(t, err, "url: not a valid PostgreSQL connection string")
}
