package host

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPolicyOfNoComponentIsAProblem: lifecycle.policies naming a component
// the host does not have (a misspelt pool or source) is a configuration
// problem naming the file, the key and the components there are, for
// validate, run and show alike. It was taken without a word: the
// component it meant kept its default policy, so a pool meant to stay up
// degraded stopped the host, or the reverse.
func TestPolicyOfNoComponentIsAProblem(t *testing.T) {
	file := writeConfig(t, "lifecycle:\n  policies:\n    pool/defualt: degrade\n")
	for _, args := range [][]string{{"config", "validate", "--config", file}, {"run", "--config", file, "--set", "admin.listen=127.0.0.1:0"}, {"config", "show", "--config", file}} {
		r := cli(t, args)
		require.Equal(t, ExitUsage, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, file+`: lifecycle.policies.pool/defualt: no component "pool/defualt" in this host (components: pool/default, queue/memory)`, "%v", args)
	}

}

// TestPolicyOfAComponentThatNeverFailsIsAProblem: the worker pools and
// the queue backend never move to failed after start (a pool's trouble
// shows as degraded, the backend reconnects for ever, a start that fails
// fails the host's start whatever the policy), so a policy for them has
// no effect: it is a configuration problem naming the file, the key and
// why, for validate, run and show alike. It was accepted without a
// word, a pool meant to stop the host staying up.
func TestPolicyOfAComponentThatNeverFailsIsAProblem(t *testing.T) {
	file := writeConfig(t, "lifecycle:\n  policies:\n    pool/default: stop\n    queue/memory: degrade\n")
	for _, args := range [][]string{{"config", "validate", "--config", file}, {"run", "--config", file, "--set", "admin.listen=127.0.0.1:0"}, {"config", "show", "--config", file}} {
		r := cli(t, args)
		require.Equal(t, ExitUsage, r.code, "%v: %s", args, r.stderr)
		for _, name := range []string{"pool/default", "queue/memory"} {
			require.Contains(t, r.stderr, file+`: lifecycle.policies.`+name+`: component "`+name+`" never fails after start`, "%v", args)
		}
	}
}

// TestDottedNameIsExplained: a queue or component name with a "." under
// workers or lifecycle.policies is split into nested keys when the
// configuration loads, quoted or not. The problem says so, naming the
// name as written, instead of the hint "(quote it)", which quoting does
// not satisfy (a quoted name is split all the same), or a bare "unknown
// key".
func TestDottedNameIsExplained(t *testing.T) {
	for _, body := range []string{
		"workers:\n  orders.eu:\n    concurrency: 2\nlifecycle:\n  policies:\n    source/mail.eu: degrade\n",
		"workers:\n  \"orders.eu\":\n    concurrency: 2\nlifecycle:\n  policies:\n    \"source/mail.eu\": degrade\n",
	} {
		file := writeConfig(t, body)
		r := cli(t, []string{"config", "validate", "--config", file})
		require.Equal(t, ExitUsage, r.code, r.stderr)
		require.NotContains(t, r.stderr, "quote it", "quoting does not keep a dotted name whole")
		require.Contains(t, r.stderr, file+`: lifecycle.policies.source/mail: a name with a "." ("source/mail.eu") is read as nested keys, quoted or not: a name here cannot contain "."`)
		require.Contains(t, r.stderr, file+`: workers.orders.eu: unknown key (known keys: `)
		require.Contains(t, r.stderr, `if "orders.eu" is meant as a name: a name with a "." is read as nested keys, quoted or not: a name here cannot contain "."`)
	}
}
