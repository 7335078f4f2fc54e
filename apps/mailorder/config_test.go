package mailorder_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// Every problem of the section is reported on its own, at the full key of
// the setting at fault and naming the file it came from: the limits and
// the store settings too. Before, the domain's limits were one problem at
// "mailorder.limits" whose second line named neither file nor key, and
// the store's at "mailorder.store.<driver>".
func TestConfigProblemsNameFileAndKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		yaml string
		want []string // keys that must have a problem
	}{
		{"limits", "mailorder:\n  demo: {enabled: true}\n  limits:\n    max_quantity: 5000000\n    max_depth: 100\n    max_parts: -1\n",
			[]string{"mailorder.limits.max_quantity", "mailorder.limits.max_depth", "mailorder.limits.max_parts"}},
		{"sqlite", "mailorder:\n  demo: {enabled: true}\n  store:\n    sqlite: {busy_timeout: -1s, max_readers: -2, synchronous: OFF}\n",
			[]string{"mailorder.store.sqlite.busy_timeout", "mailorder.store.sqlite.max_readers", "mailorder.store.sqlite.synchronous"}},
		{"postgres", "mailorder:\n  demo: {enabled: true}\n  store:\n    driver: postgres\n    postgres: {url: 'postgres://localhost/db', max_conns: -1, idle_in_transaction_timeout: -1s}\n",
			[]string{"mailorder.store.postgres.max_conns", "mailorder.store.postgres.idle_in_transaction_timeout"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.yaml), 0o600))
			_, err := config.Load(config.Options{Files: []string{path}, Environ: []string{}})
			var ce *config.Error
			require.True(t, errors.As(err, &ce), "%v", err)
			byKey := map[string]config.Problem{}
			for _, p := range ce.Problems {
				require.NotContains(t, p.Msg, "\n", "one problem per line: %+v", p)
				byKey[p.Key] = p
			}
			for _, k := range tt.want {
				p, ok := byKey[k]
				require.True(t, ok, "no problem at %s in:\n%v", k, err)
				require.Equal(t, path, p.Source, "%s", k)
				require.False(t, strings.Contains(p.Msg, "config:"), "the message is about the value: %q", p.Msg)
			}
		})
	}
}

// Values that pass for numbers but make the application misbehave were
// accepted: limits under a mail's own size (every mail, every order
// refused), a SQLite busy_timeout under 1ms or over SQLite's 32-bit
// millisecond count (either way the PRAGMA reads 0: no waiting on a lock),
// an idle_in_transaction_timeout the server refuses (every connection
// fails), max_conns that Open sized a pool for (it panicked), and a demo
// seeding a million mails before the start. Each is a problem at its
// full key, naming the file; the values at the bounds pass.
func TestConfigRefusesValuesOutOfRange(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		yaml string
		want []string // keys that must have a problem
	}{
		{"limits", "mailorder:\n  demo: {enabled: true}\n  limits: {max_mail_bytes: 1, max_attachment_bytes: 1023}\n",
			[]string{"mailorder.limits.max_mail_bytes", "mailorder.limits.max_attachment_bytes"}},
		{"sqlite under 1ms", "mailorder:\n  demo: {enabled: true}\n  store:\n    sqlite: {busy_timeout: 500us}\n",
			[]string{"mailorder.store.sqlite.busy_timeout"}},
		{"sqlite over the limit", "mailorder:\n  demo: {enabled: true}\n  store:\n    sqlite: {busy_timeout: 1000h}\n",
			[]string{"mailorder.store.sqlite.busy_timeout"}},
		{"postgres", "mailorder:\n  demo: {enabled: true}\n  store:\n    driver: postgres\n    postgres: {url: 'postgres://localhost/db', max_conns: 1099511627776, idle_in_transaction_timeout: 1000h}\n",
			[]string{"mailorder.store.postgres.max_conns", "mailorder.store.postgres.idle_in_transaction_timeout"}},
		{"demo", "mailorder:\n  demo: {enabled: true, mails: 1000000}\n",
			[]string{"mailorder.demo.mails"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.yaml), 0o600))
			_, err := config.Load(config.Options{Files: []string{path}, Environ: []string{}})
			var ce *config.Error
			require.True(t, errors.As(err, &ce), "%v", err)
			byKey := map[string]config.Problem{}
			for _, p := range ce.Problems {
				byKey[p.Key] = p
			}
			for _, k := range tt.want {
				p, ok := byKey[k]
				require.True(t, ok, "no problem at %s in:\n%v", k, err)
				require.Equal(t, path, p.Source, "%s", k)
				require.Contains(t, p.Msg, "must be", "%s", k)
			}
			require.Len(t, ce.Problems, len(tt.want), "%v", err)
		})
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("mailorder:\n  demo: {enabled: true, mails: 10000}\n  limits: {max_mail_bytes: 1024, max_attachment_bytes: 1024}\n  store:\n    sqlite: {busy_timeout: 1ms}\n"), 0o600))
	_, err := config.Load(config.Options{Files: []string{path}, Environ: []string{}})
	require.NoError(t, err)
}
