package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// SecretListConfig has a secret list of strings.
type SecretListConfig struct {
	Keys []string `koanf:"keys" secret:"true"`
}

// A _file key next to a secret mapping or list (exporter headers) is a
// problem at that key: a file holds one string. Load panicked (SetString
// on a map) and took the host down with a stack trace.
func TestSecretFileOfAMappingOrListIsAProblem(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("exporter", ExporterConfig{}))
	require.NoError(t, r.Declare("signing", SecretListConfig{}))
	secret := writeFile(t, "headers", "Authorization: Bearer t0ken\n")
	for _, tc := range []struct{ set, key string }{
		{"exporter.headers_file=" + secret, "exporter.headers_file"},
		{"signing.keys_file=" + secret, "signing.keys_file"},
	} {
		var err error
		require.NotPanics(t, func() {
			_, err = config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{tc.set}})
		}, tc.set)
		requireProblem(t, err, "--set "+tc.key+"=...", tc.key, "a file holds one string")
		require.NotContains(t, err.Error(), "t0ken")
	}
}

// A secret and its _file key follow the layers like any key: the later
// layer wins. A file's password_file silently beat the environment's
// PLBA_SERVER__PASSWORD (the file key decodes after the plain one), so an
// override of a secret never took effect; both in one source lost one
// without a word.
func TestSecretAndItsFileFollowTheLayers(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "pw", "from-file\n")
	fileRef := writeFile(t, "ref.yaml", "server:\n  password_file: "+secret+"\n")
	inline := writeFile(t, "inline.yaml", "server:\n  password: inline\n")
	for _, tc := range []struct {
		name string
		opts config.Options
		want string
	}{
		{"env over a file's _file", config.Options{Files: []string{fileRef}, Environ: []string{"PLBA_SERVER__PASSWORD=from-env"}}, "from-env"},
		{"--set over a file's _file", config.Options{Files: []string{fileRef}, Sets: []string{"server.password=from-set"}}, "from-set"},
		{"env _file over a file's value", config.Options{Files: []string{inline}, Environ: []string{"PLBA_SERVER__PASSWORD_FILE=" + secret}}, "from-file"},
		{"an empty _file name is no file", config.Options{Files: []string{inline}, Sets: []string{"server.password_file="}}, "inline"},
	} {
		c, err := load(t, tc.opts)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, server(t, c).Password, tc.name)
	}

	both := writeFile(t, "both.yaml", "server:\n  password: inline\n  password_file: "+secret+"\n")
	_, err := load(t, config.Options{Files: []string{both}})
	requireProblem(t, err, both, "server.password_file", "set beside password in the same source")
	require.NotContains(t, err.Error(), "inline")
}

// An empty secret beside its _file key in one source loses nothing: the
// file counts, as it did before the two followed the layers. A compose
// file that passes PLBA_..._PASSWORD: ${PASSWORD:-} beside
// PLBA_..._PASSWORD_FILE, or a YAML template that renders password: ""
// beside password_file, was refused ("one would be lost").
func TestEmptySecretBesideItsFileInOneSource(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "pw", "from-file\n")
	for _, tc := range []struct {
		name string
		opts config.Options
	}{
		{"env", config.Options{Environ: []string{"PLBA_SERVER__PASSWORD=", "PLBA_SERVER__PASSWORD_FILE=" + secret}}},
		{"file", config.Options{Files: []string{writeFile(t, "empty.yaml", "server:\n  password: \"\"\n  password_file: "+secret+"\n")}}},
	} {
		c, err := load(t, tc.opts)
		require.NoError(t, err, tc.name)
		require.Equal(t, "from-file", server(t, c).Password, tc.name)
	}
}

// An empty secret in a later layer is a secret not given, not a password
// set to nothing: the earlier layer's _file still counts. A compose
// file's PLBA_QUEUE__JETSTREAM__PASSWORD: ${PASSWORD:-} (empty when the
// operator set no PASSWORD) beside a config file's password_file started
// the host with an empty password. Either way round: an empty _file name
// in a later layer leaves an earlier secret as it is.
func TestEmptySecretInALaterLayerKeepsTheFile(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "pw", "from-file\n")
	ref := writeFile(t, "ref.yaml", "server:\n  password_file: "+secret+"\n")
	empty := writeFile(t, "empty.yaml", "server:\n  password: \"\"\n")
	for _, tc := range []struct {
		name string
		opts config.Options
	}{
		{"empty env over a file's _file", config.Options{Files: []string{ref}, Environ: []string{"PLBA_SERVER__PASSWORD="}}},
		{"empty --set over a file's _file", config.Options{Files: []string{ref}, Sets: []string{"server.password="}}},
		{"a later file's empty secret over an earlier file's _file", config.Options{Files: []string{ref, empty}}},
		{"an env _file over an earlier file's empty secret", config.Options{Files: []string{empty}, Environ: []string{"PLBA_SERVER__PASSWORD_FILE=" + secret}}},
	} {
		c, err := load(t, tc.opts)
		require.NoError(t, err, tc.name)
		require.Equal(t, "from-file", server(t, c).Password, tc.name)
	}
	// A secret given (not empty) in a later layer still wins.
	c, err := load(t, config.Options{Files: []string{ref}, Environ: []string{"PLBA_SERVER__PASSWORD=from-env"}})
	require.NoError(t, err)
	require.Equal(t, "from-env", server(t, c).Password)
}

// PoolSecret is an entry of a map-valued section with a secret.
type PoolSecret struct {
	Name     string `koanf:"name"`
	Password string `koanf:"password" secret:"true"`
}

// An empty secret or _file name in a later layer is one not given: it
// does not replace a secret, or a _file name, that an earlier layer gave.
// A compose file's PLBA_..._PASSWORD_FILE: ${PWFILE:-} or
// PLBA_..._PASSWORD: ${PASSWORD:-}, empty when the operator set nothing,
// wiped out the config file's password_file or password, and the host
// started with an empty password. Keys that are not secrets still take
// an empty value, and Options.Values sets its sections as they are.
func TestEmptySecretInALaterLayerIsNotGiven(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("server", ServerConfig{Host: "localhost", Port: 8080}))
	require.NoError(t, r.Declare("pools", map[string]PoolSecret{}))
	secret := writeFile(t, "pw", "from-file\n")
	ref := writeFile(t, "ref.yaml", "server:\n  password_file: "+secret+"\n")
	inline := writeFile(t, "inline.yaml", "server:\n  host: example.com\n  password: inline\npools:\n  a: {name: a, password: inline}\n")
	emptied := writeFile(t, "emptied.yaml", "server:\n  password: \"\"\n  password_file: \"\"\n")
	get := func(opts config.Options) (ServerConfig, map[string]PoolSecret) {
		t.Helper()
		opts.Registry = r
		if opts.Environ == nil {
			opts.Environ = []string{}
		}
		c, err := config.Load(opts)
		require.NoError(t, err)
		var s ServerConfig
		require.NoError(t, c.Decode("server", &s))
		var p map[string]PoolSecret
		require.NoError(t, c.Decode("pools", &p))
		return s, p
	}
	for _, tc := range []struct {
		name string
		opts config.Options
		want string
	}{
		{"empty env _file over a file's _file", config.Options{Files: []string{ref}, Environ: []string{"PLBA_SERVER__PASSWORD_FILE="}}, "from-file"},
		{"empty env and env _file over a file's _file", config.Options{Files: []string{ref}, Environ: []string{"PLBA_SERVER__PASSWORD=", "PLBA_SERVER__PASSWORD_FILE="}}, "from-file"},
		{"empty env over a file's secret", config.Options{Files: []string{inline}, Environ: []string{"PLBA_SERVER__PASSWORD="}}, "inline"},
		{"empty --set over a file's secret", config.Options{Files: []string{inline}, Sets: []string{"server.password="}}, "inline"},
		{"a later file's empty secret and _file", config.Options{Files: []string{inline, emptied}}, "inline"},
		{"a later file's empty secret and _file over a _file", config.Options{Files: []string{ref, emptied}}, "from-file"},
	} {
		s, _ := get(tc.opts)
		require.Equal(t, tc.want, s.Password, tc.name)
	}
	_, pools := get(config.Options{Files: []string{inline}, Environ: []string{"PLBA_POOLS__A__PASSWORD="}})
	require.Equal(t, "inline", pools["a"].Password, "a map entry's secret")

	s, pools := get(config.Options{Files: []string{inline}, Environ: []string{"PLBA_SERVER__HOST=", "PLBA_POOLS__A__NAME="}})
	require.Empty(t, s.Host, "not a secret: the empty value counts")
	require.Empty(t, pools["a"].Name, "not a secret: the empty value counts")
	require.Equal(t, "inline", s.Password)

	s, _ = get(config.Options{Files: []string{inline}, Values: map[string]any{"server": ServerConfig{Host: "h", Port: 1}}})
	require.Empty(t, s.Password, "Options.Values sets the section as it is")
}

// Options.Values sets a section as it is, every field counting as set:
// an empty secret there is the secret, as a non-empty one is, and beats
// a _file key an earlier layer gave. A test kit's section with no
// password beside a configuration's password_file got the file's
// password instead (an empty secret counted as not given, in any layer).
func TestValuesEmptySecretIsTheSecret(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "pw", "from-file\n")
	ref := writeFile(t, "ref.yaml", "server:\n  password_file: "+secret+"\n")
	for _, tc := range []struct {
		name string
		opts config.Options
		want string
	}{
		{"empty", config.Options{Files: []string{ref}, Values: map[string]any{"server": ServerConfig{Host: "h", Port: 1}}}, ""},
		{"empty over an env _file", config.Options{Environ: []string{"PLBA_SERVER__PASSWORD_FILE=" + secret}, Values: map[string]any{"server": ServerConfig{Host: "h", Port: 1}}}, ""},
		{"given", config.Options{Files: []string{ref}, Values: map[string]any{"server": ServerConfig{Host: "h", Port: 1, Password: "v"}}}, "v"},
	} {
		c, err := load(t, tc.opts)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, server(t, c).Password, tc.name)
	}
}

// An empty secret in a later layer leaves an earlier secret as it is
// whatever the earlier one holds: a config file's unquoted numeric
// password (password: 12345678, a problem: "quote it") was replaced by a
// compose file's empty PLBA_SERVER__PASSWORD, and the host started with
// an empty password instead of reporting the file's. Only a text value
// counted as given.
func TestEmptySecretKeepsAnEarlierSecretThatIsNotText(t *testing.T) {
	t.Parallel()
	for _, value := range []string{"12345678", "true", "1.5"} {
		f := writeFile(t, "pin.yaml", "server:\n  password: "+value+"\n")
		for _, opts := range []config.Options{
			{Files: []string{f}, Environ: []string{"PLBA_SERVER__PASSWORD="}},
			{Files: []string{f}, Sets: []string{"server.password="}},
			{Files: []string{f, writeFile(t, "empty.yaml", "server:\n  password: \"\"\n")}},
		} {
			c, err := load(t, opts)
			if err == nil {
				require.Failf(t, "no problem", "password: %s, then an empty one: got %q", value, server(t, c).Password)
			}
			requireProblem(t, err, f, "server.password", "expected a string")
		}
	}
}
