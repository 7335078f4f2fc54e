package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCtlAgainstTheHost runs `host ctl` against the built host running the
// embedded demo (mailorder on embedded JetStream; its malformed mails end
// as dead letters): queues, dead letters (list, show, dry run, purge), a
// task lookup by id and by key,
// pools (pause, resize, resume, clear), sources, the log level, and the
// exit statuses 1 (failed) and 2 (usage).
func TestCtlAgainstTheHost(t *testing.T) {
	t.Parallel()
	// The demo's user and token off: the admin API is open on loopback,
	// as before the demo had them (admin.auth.demo is tested in
	// platform/admin).
	p := startHost(t, nil, append(jsonLogs, "--set", "admin.auth.demo=false")...)
	base := "http://" + p.adminAddr(t)
	ctl := func(args ...string) result {
		t.Helper()
		return runHostCmd(t, nil, append([]string{"ctl", "--url", base}, args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		r := ctl(args...)
		require.Equal(t, 0, r.code, "ctl %v: %s%s", args, r.stdout, r.stderr)
		return r.stdout
	}

	// The demo's malformed mails become dead letters.
	var dead struct {
		Items []struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"items"`
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		require.NoError(t, json.Unmarshal([]byte(ok("dlq", "list", "mailorder", "-o", "json")), &dead))
		if len(dead.Items) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no dead letter from the demo: %s", p.output())
		time.Sleep(200 * time.Millisecond)
	}

	out := ok("queues")
	require.Contains(t, out, "QUEUE")
	require.Contains(t, out, "mailorder")
	var qs struct {
		Queues []struct {
			Queue string `json:"queue"`
			Dead  int    `json:"dead"`
		} `json:"queues"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("queues", "-o", "json")), &qs))
	found := false
	for _, q := range qs.Queues {
		if q.Queue == "mailorder" {
			found = true
			require.Positive(t, q.Dead)
		}
	}
	require.True(t, found, "mailorder listed")

	id := dead.Items[0].ID
	out = ok("dlq", "show", "mailorder", id)
	require.Contains(t, out, dead.Items[0].Reason)
	require.Contains(t, out, "payload")
	out = ok("dlq", "list", "mailorder")
	require.Contains(t, out, id)

	// The dead letter found as a task, by id and by its key.
	out = ok("task", "mailorder", id)
	require.Contains(t, out, "dead")
	require.Contains(t, out, "searched: ")
	var tasks struct {
		Found []struct {
			State string `json:"state"`
			Task  struct {
				ID  string `json:"id"`
				Key string `json:"key"`
			} `json:"task"`
		} `json:"found"`
		Searched []string `json:"searched"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("task", "mailorder", id, "-o", "json")), &tasks))
	require.Len(t, tasks.Found, 1)
	require.Equal(t, id, tasks.Found[0].Task.ID)
	require.NoError(t, json.Unmarshal([]byte(ok("task", "mailorder", "--key", tasks.Found[0].Task.Key, "-o", "json")), &tasks))
	require.NotEmpty(t, tasks.Found)
	require.Equal(t, "dead", tasks.Found[0].State)
	r := ctl("task", "mailorder", "no-such-task")
	require.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	require.Contains(t, r.stderr, "searched: ")
	require.Equal(t, 2, ctl("task", "mailorder").code, "an id or --key is needed")

	var dry struct {
		DryRun  bool `json:"dry_run"`
		Matched int  `json:"matched"`
		Done    int  `json:"done"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("dlq", "redrive", "mailorder", "--all", "--dry-run", "-o", "json")), &dry))
	require.True(t, dry.DryRun)
	require.GreaterOrEqual(t, dry.Matched, len(dead.Items))
	require.Zero(t, dry.Done)

	out = ok("dlq", "purge", "mailorder", id)
	require.Contains(t, out, "purged 1 of 1")
	r = ctl("dlq", "purge", "mailorder", id)
	require.Equal(t, 1, r.code, "purging it again fails: %s%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "failed")

	out = ok("pool", "pause", "mailorder")
	require.Contains(t, out, "paused")
	out = ok("pool", "resize", "mailorder", "2")
	require.Contains(t, out, "size=2")
	out = ok("pool", "list")
	require.Contains(t, out, "paused,size=2")
	out = ok("pool", "resume", "mailorder")
	require.Contains(t, out, "running")
	out = ok("pool", "clear", "mailorder")
	require.NotContains(t, out, "size=2")

	var srcs struct {
		Sources []struct {
			Name string `json:"name"`
		} `json:"sources"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("source", "list", "-o", "json")), &srcs))
	require.NotEmpty(t, srcs.Sources)
	name := srcs.Sources[0].Name
	out = ok("source", "pause", name)
	require.Contains(t, out, "true")
	out = ok("source", "resume", name)
	require.Contains(t, out, "false")

	require.Equal(t, "debug", strings.TrimSpace(ok("loglevel", "debug")))
	require.Equal(t, "debug", strings.TrimSpace(ok("loglevel")))

	code, body := httpGet(t, base+"/admin/v1/config")
	require.Equal(t, 200, code)
	require.Contains(t, body, "backend: jetstream", "the effective configuration")
	code, body = httpGet(t, base+"/admin/v1/openapi.json")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"openapi": "3.1.0"`)
	require.Contains(t, body, `"/admin/v1/mailorder"`, "the application's page is described too")

	r = ctl("pool", "pause", "no-such-queue")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "404")
	r = ctl("dlq", "list")
	require.Equal(t, 2, r.code, "a missing argument is a usage error")
	r = ctl("pool", "resize", "mailorder", "many")
	require.Equal(t, 2, r.code)
	r = runHostCmd(t, nil, "ctl", "--url", "http://127.0.0.1:1", "queues")
	require.Equal(t, 1, r.code, "an unreachable host: %s", r.stderr)
}
