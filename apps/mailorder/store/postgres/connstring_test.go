package postgres

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// pgEnv are the PG* variables pgx reads; a test clears them so the
// machine's environment does not decide its outcome.
var pgEnv = []string{
	"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGAPPNAME", "PGCONNECT_TIMEOUT",
	"PGSSLMODE", "PGSSLKEY", "PGSSLCERT", "PGSSLCERTMODE", "PGSSLSNI", "PGSSLROOTCERT", "PGSSLPASSWORD",
	"PGSSLNEGOTIATION", "PGTARGETSESSIONATTRS", "PGSERVICE", "PGSERVICEFILE", "PGTZ", "PGOPTIONS",
	"PGMINPROTOCOLVERSION", "PGMAXPROTOCOLVERSION", "PGCHANNELBINDING", "PGREQUIREAUTH",
}

// cleanPGEnv points HOME at an empty directory and clears the PG*
// environment; it returns the directory.
func cleanPGEnv(t testing.TB) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, env := range pgEnv {
		t.Setenv(env, "") // restored after the test
		require.NoError(t, os.Unsetenv(env))
	}
	return home
}

// writeCertPair writes a self-signed certificate and its key (PEM) into
// dir and returns their paths.
func writeCertPair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailorder test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(priv)
	require.NoError(t, err)
	cert, key = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return cert, key
}

// sameConfig requires that parseURL reads s as pgx.ParseConfig does.
func sameConfig(t *testing.T, s string) {
	t.Helper()
	want, err := pgx.ParseConfig(s)
	require.NoError(t, err, "pgx.ParseConfig refuses %q: the table holds DSNs pgx accepts", s)
	got, err := parseURL(s)
	require.NoError(t, err, "parseURL refuses %q, which pgx accepts", s)
	require.Equal(t, want.Host, got.Host, s)
	require.Equal(t, want.Port, got.Port, s)
	require.Equal(t, want.Database, got.Database, s)
	require.Equal(t, want.User, got.User, s)
	require.Equal(t, want.Password, got.Password, s)
	require.Equal(t, want.RuntimeParams, got.RuntimeParams, s)
	require.Equal(t, want.TLSConfig == nil, got.TLSConfig == nil, s)
	require.Len(t, got.Fallbacks, len(want.Fallbacks), s)
	for i := range want.Fallbacks {
		require.Equal(t, want.Fallbacks[i].Host, got.Fallbacks[i].Host, s)
		require.Equal(t, want.Fallbacks[i].Port, got.Fallbacks[i].Port, s)
	}
}

// Every connection string pgx accepts, in either form, with the files
// it names regular files, parseURL accepts too and reads the same way: a
// string this reading refused, or read with another set of keys (which
// the parse is then told to allow), would stop a deployment that worked.
func TestParseURLAcceptsWhatPgxAccepts(t *testing.T) {
	home := cleanPGEnv(t)
	cert, key := writeCertPair(t, home)
	spaced := filepath.Join(home, "a dir")
	require.NoError(t, os.Mkdir(spaced, 0o700))
	spacedCert, spacedKey := writeCertPair(t, spaced)
	passfile := filepath.Join(home, "pgpass")
	require.NoError(t, os.WriteFile(passfile, []byte("*:*:*:u:from-passfile\n"), 0o600))
	services := filepath.Join(home, "services.conf")
	require.NoError(t, os.WriteFile(services, []byte(
		"# services\n[orders]\nhost = db.example\nport=5433\ndbname=orders\nsslrootcert="+cert+"\n\n[plain]\nhost=/var/run/postgresql\n"), 0o600))
	enc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") } // libpq reads no + as a space

	for _, s := range []string{
		// URLs
		"postgres://u:pw@127.0.0.1:5432/db?sslmode=disable",
		"postgresql://u:pw@127.0.0.1/db",
		"postgres://u:p%40ss%3Aw%2Fo%3Frd@db.example/db",
		"postgres://u:p%20w@db.example/db",
		"postgres://u%40corp:pw@db.example/my%20db",
		"postgres://u@db.example:/db",
		"postgres://db.example",
		"postgres://",
		"postgres:///db",
		"postgres:///db?host=/var/run/postgresql",
		"postgres:///db?host=%2Fvar%2Frun%2Fpostgresql&port=5433",
		"postgres://%2Fvar%2Frun%2Fpostgresql/db",
		"postgres://u:pw@/db?host=/tmp",
		"postgres://u@[::1]:5432/db",
		"postgres://u@[::1]/db",
		"postgres://u@[fe80::1%25eth0]:5432/db",
		"postgres://h1:5432,h2:5433/db?target_session_attrs=read-write",
		"postgres://h1,h2,h3/db",
		"postgres://h1,[::1]:5433/db",
		"postgres://u:pw@h1:5432,h2/db?connect_timeout=5",
		"postgres://u@h/db?options=-c%20search_path%3Dfoo",
		"postgres://u@h/db?options=" + enc("-c statement_timeout=5000 -c lock_timeout=100"),
		"postgres://u@h/db?application_name=a&application_name=b",
		"postgres://u@h/db?sslmode=require&sslmode=disable",
		"postgres://u@h/db?ssl=true",
		"postgres://u@h/db?sslmode=disable&ssl=true",
		"postgres://u@h/db?ssl=true&sslmode=verify-ca&sslrootcert=" + cert,
		"postgres://u@h/db?sslmode=verify-full&sslrootcert=" + cert,
		"postgres://u@h/db?sslmode=verify-full&sslrootcert=" + enc(cert),
		"postgres://u@h/db?sslmode=verify-full&sslrootcert=system",
		"postgres://u@h/db?sslmode=require&sslcert=" + cert + "&sslkey=" + key,
		"postgres://u@h/db?sslmode=require&sslcert=" + enc(spacedCert) + "&sslkey=" + strings.ReplaceAll(spacedKey, " ", "%20"),
		"postgres://u@h/db?sslmode=require&sslcertmode=disable&sslcert=" + cert + "&sslkey=" + key,
		"postgres://u@h/db?passfile=" + passfile,
		"postgres://u@h/db?pass%66ile=" + passfile,
		"postgres://u@h/db?db%6Eame=other",
		"postgres://u@h/db?dbname=other&user=v",
		"postgres://u@h/db?password=",
		"postgres://u@h/db?application_name=",
		"postgres://u@h/db?%20application_name%20=%20x%20",
		"postgres://u@h/db?service=orders&servicefile=" + services,
		"postgres://u@h/db?servicefile=" + services + "&service=plain",
		"postgres://u@h/db?sslnegotiation=direct&sslmode=require",
		"postgres://u@h/db?channel_binding=disable&require_auth=scram-sha-256",
		"postgres://u@h/db?min_protocol_version=3.0&max_protocol_version=latest",
		"postgres://u@h/db?pool_max_conns=10&search_path=app",
		"postgres://u@h/db?krbsrvname=pg&krbspn=x",
		"postgres://u@h/db?sslsni=0&sslpassword=x",
		"postgres://u@h/db?",
		"postgres://u@h/db/with/slashes",
		"postgres://u@h?application_name=x",
		"postgres://u:pw@h/db@x",
		"postgres://u:a:b@h/db",
		"postgres://:pw@h/db",
		"postgres://u:@h/db",
		"postgres://@h/db",
		// keyword/value
		"host=localhost port=5432 dbname=test user=postgres sslmode=disable",
		"host = localhost   dbname = 'my db'  user =postgres password= 'it\\'s' ",
		"host=localhost dbname=db\\ name password=a\\\\b",
		"\t\nhost=localhost\tdbname=db\n",
		"host=/var/run/postgresql dbname=x",
		"host='/var/run/postgresql' dbname=x",
		"host=h options='-c statement_timeout=5000 -c search_path=app'",
		"host=h options=-c\\ search_path=app",
		"host=h password= user=u",
		"host=h password='' user=u",
		"host=h user= dbname=x",
		"host=h dbname=a dbname=b",
		"host=h1,h2 port=5432,5433 target_session_attrs=any",
		"host=::1 port=5432",
		"host=h sslmode=verify-full sslrootcert=" + cert,
		"host=h sslmode=verify-full sslrootcert='" + cert + "'",
		"host=h sslmode=require sslcert='" + spacedCert + "' sslkey=" + strings.ReplaceAll(spacedKey, " ", "\\ "),
		"host=h user=u passfile=" + passfile,
		"service=orders servicefile=" + services,
		"host=h service=plain servicefile='" + services + "'",
		"host=h application_name=x=y",
		"host=h trailing=\\",
		"host=h",
	} {
		sameConfig(t, s)
	}
}

// dsnSeeds are connection strings of either form for the fuzz target.
var dsnSeeds = []string{
	"postgres://u:p%40w@h1:5432,[::1]:5433/db?sslmode=disable&options=-c%20a%3Db&ssl=true",
	"postgresql://%2Ftmp/db?host=/var/run/postgresql&application_name=a&application_name=b",
	"postgres://u@h:/db?passfile=/nonexistent&db%6Eame=x",
	"host = h  dbname='my db' password='it\\'s' options=-c\\ a=b user= port=5432,5433",
	"service=x servicefile=/nonexistent sslrootcert=system",
}

// Whatever pgx.ParseConfig accepts, parseURL accepts (HOME empty, no PG*
// environment, no file named that exists): this reading of the string
// and pgx's agree on its keys.
func FuzzParseURLAgreesWithPgx(f *testing.F) {
	cleanPGEnv(f)
	for _, s := range dsnSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "/dev") || strings.Contains(s, "/proc") || strings.Contains(s, "/sys") {
			t.Skip("names a device")
		}
		if _, err := pgx.ParseConfig(s); err != nil {
			return
		}
		_, err := parseURL(s)
		require.NoError(t, err, "parseURL refuses %q, which pgx accepts", s)
	})
}

// A passfile pgx does without is no problem: pgx reads the passfile
// only for a password it was not given, and ignores one it cannot read
// (a directory, such as a bind mount of a missing ~/.pgpass makes) or
// that is empty (PGPASSFILE=/dev/null, to read none). Validate refused
// both ("is a directory", "is a device"), so a deployment that
// connected before no longer started.
func TestPassfilePgxDoesWithoutIsAccepted(t *testing.T) {
	home := cleanPGEnv(t)
	require.NoError(t, os.Mkdir(filepath.Join(home, ".pgpass"), 0o700))
	for _, s := range []string{
		"postgres://u@127.0.0.1/db?sslmode=disable",
		"host=127.0.0.1 user=u passfile=" + home,
		"postgres://u@127.0.0.1/db?passfile=" + os.DevNull,
	} {
		sameConfig(t, s)
	}
	t.Setenv("PGPASSFILE", os.DevNull)
	sameConfig(t, "postgres://u@127.0.0.1/db")
}

// pgx reads the service file only for a service: without one, a service
// file that is not a regular file (a directory at ~/.pg_service.conf, a
// PGSERVICEFILE of /dev/null set for every program) is never opened, and
// Validate refused it all the same. With a service, even an empty one
// (pgx looks the empty name up), the file is checked before pgx opens
// it.
func TestServiceFileIsCheckedOnlyForAService(t *testing.T) {
	home := cleanPGEnv(t)
	require.NoError(t, os.Mkdir(filepath.Join(home, ".pg_service.conf"), 0o700))
	sameConfig(t, "postgres://u:pw@127.0.0.1/db?sslmode=disable")
	t.Setenv("PGSERVICEFILE", os.DevNull)
	sameConfig(t, "host=127.0.0.1 user=u password=pw sslmode=disable")

	pipe := filepath.Join(home, "pipe")
	require.NoError(t, syscall.Mkfifo(pipe, 0o600))
	t.Cleanup(func() { // unblocks a reader a defect left behind
		if f, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	for _, s := range []string{
		"host=127.0.0.1 service='' servicefile=" + pipe,
		"postgres://u:pw@127.0.0.1/db?service=&servicefile=" + pipe,
		"postgres://u:pw@127.0.0.1/db?service=orders&servicefile=" + pipe,
	} {
		done := make(chan error, 1)
		go func() {
			_, err := parseURL(s)
			done <- err
		}()
		select {
		case err := <-done:
			require.ErrorContains(t, err, "servicefile "+pipe+" is a named pipe", s)
			require.NotContains(t, err.Error(), "pw", s)
		case <-time.After(10 * time.Second):
			t.Fatalf("parseURL(%q) has not returned after 10s", s)
		}
	}
}
