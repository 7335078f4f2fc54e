package host

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auth"
	"github.com/plba/plba/platform/control"
)

// ctlFlags are the flags every `ctl` command shares.
type ctlFlags struct {
	url       string
	tokenFile string
	output    string
	timeout   time.Duration
}

// ctl is one `ctl` invocation: its client, output and exit status.
type ctl struct {
	f      *ctlFlags
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
	code   *int
}

const ctlHelp = `Ctl is a command-line client of the host's admin API (JSON under /admin/v1).

It calls --url (default http://127.0.0.1:8080) with the bearer token from
--token-file, or else from the environment variable PLBA_CTL_TOKEN. It prints
tables for people and, with -o json, the API's JSON answer for scripts.

Exit status: 0 done, 1 failed (the call failed, or an action left some
targets undone), 2 usage error, 3 denied (401 without or with a wrong token,
403 for a role too weak: viewers read, operators act, admins also read the
configuration).`

// ctlCommand builds `ctl` and its subcommands.
func ctlCommand(stdin io.Reader, stdout, stderr io.Writer, code *int) *cobra.Command {
	f := &ctlFlags{}
	c := &ctl{f: f, stdout: stdout, stderr: stderr, stdin: stdin, code: code}
	root := &cobra.Command{
		Use:   "ctl",
		Short: "operate a running host through its admin API",
		Long:  ctlHelp,
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return errors.New("ctl: want a command (see --help)") },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.url, "url", "http://127.0.0.1:8080", "the admin server's base `URL`")
	pf.StringVar(&f.tokenFile, "token-file", "", "read the bearer token from `FILE` (default: $"+CtlTokenEnv+")")
	pf.StringVarP(&f.output, "output", "o", "table", "output `FORMAT`: table or json")
	pf.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound of one call")

	root.AddCommand(c.queuesCmd(), c.dlqCmd(), c.poolCmd(), c.sourceCmd(), c.loglevelCmd(), c.auditCmd(), c.usersCmd())
	return root
}

// run wraps a command body: it checks the flags (a usage error is
// returned to cobra: exit 2), builds the client and sets the exit status
// from the body's error.
func (c *ctl) run(body func(ctx context.Context, cl *ctlClient, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		if c.f.output != "table" && c.f.output != "json" {
			return fmt.Errorf("--output %q: want table or json", c.f.output)
		}
		cl, err := newCtlClient(c.f.url, c.f.tokenFile, c.f.timeout)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.f.timeout)
		defer cancel()
		if err := body(ctx, cl, args); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
			fmt.Fprintf(c.stderr, "ctl: %v\n", err)
			*c.code = exitOf(err)
		}
		return nil
	}
}

// usageError is a command's own usage error (exit 2).
type usageError struct{ error }

// show prints raw (the API's JSON) with -o json, or calls table.
func (c *ctl) show(raw []byte, table func(w *tabw)) {
	if c.f.output == "json" {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			enc := json.NewEncoder(c.stdout)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			_ = enc.Encode(v)
			return
		}
		_, _ = c.stdout.Write(raw)
		return
	}
	w := newTabw(c.stdout)
	table(w)
	w.flush()
}

func (c *ctl) queuesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "queues",
		Short: "list the queues: ready, in flight, delayed, dead, rates over the last minute",
		Args:  cobra.NoArgs,
		RunE: c.run(func(ctx context.Context, cl *ctlClient, _ []string) error {
			var out struct{ Queues []control.Queue }
			raw, err := cl.do(ctx, "GET", control.Prefix+"/queues", nil, &out)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) {
				w.row("QUEUE", "READY", "IN FLIGHT", "DELAYED", "DEAD", "ENQUEUED/S", "SUCCEEDED/S", "FAILED/S", "POOL")
				for _, q := range out.Queues {
					w.row(q.Queue, q.Ready, q.InFlight, q.Delayed, q.Dead, rate(q.EnqueuedPerSec), rate(q.SucceededPerSec), rate(q.FailedPerSec), q.Pool)
				}
			})
			return nil
		}),
	}
}

func rate(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func (c *ctl) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "list, show, re-drive and purge dead letters", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return errors.New("dlq: want list, show, redrive or purge") }}
	var flt struct {
		kind, reason, since, until, cursor string
		limit                              int
		all, dry                           bool
	}
	filterFlags := func(k *cobra.Command) {
		k.Flags().StringVar(&flt.kind, "kind", "", "only tasks of this `KIND`")
		k.Flags().StringVar(&flt.reason, "reason", "", "only reasons containing `TEXT` (case-insensitive)")
		k.Flags().StringVar(&flt.since, "since", "", "only dead-lettered at or after `TIME` (RFC 3339)")
		k.Flags().StringVar(&flt.until, "until", "", "only dead-lettered before `TIME` (RFC 3339)")
	}
	list := &cobra.Command{
		Use: "list QUEUE", Short: "a page of dead letters (no payloads)", Args: cobra.ExactArgs(1),
		RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
			v := url.Values{}
			for k, s := range map[string]string{"kind": flt.kind, "reason": flt.reason, "since": flt.since, "until": flt.until, "cursor": flt.cursor} {
				if s != "" {
					v.Set(k, s)
				}
			}
			if flt.limit > 0 {
				v.Set("limit", strconv.Itoa(flt.limit))
			}
			var out control.DeadList
			raw, err := cl.do(ctx, "GET", control.Prefix+"/queues/"+url.PathEscape(args[0])+"/dead?"+v.Encode(), nil, &out)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) {
				w.row("ID", "KIND", "AT", "ATTEMPTS", "SIZE", "REASON")
				for _, d := range out.Items {
					w.row(d.ID, d.Kind, d.At.UTC().Format(time.RFC3339), d.Attempts, d.PayloadSize, cut(d.Reason, 80))
				}
				if out.Next != "" {
					w.note("more: --cursor " + out.Next)
				}
			})
			return nil
		}),
	}
	filterFlags(list)
	list.Flags().StringVar(&flt.cursor, "cursor", "", "continue after the page that printed `CURSOR`")
	list.Flags().IntVar(&flt.limit, "limit", 0, "page size (1 to 1000, default 100)")

	show := &cobra.Command{
		Use: "show QUEUE ID", Short: "one dead letter with headers and payload", Args: cobra.ExactArgs(2),
		RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
			var d control.DeadDetail
			raw, err := cl.do(ctx, "GET", control.Prefix+"/queues/"+url.PathEscape(args[0])+"/dead/"+url.PathEscape(args[1]), nil, &d)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) {
				w.row("id", d.ID)
				w.row("kind", d.Kind)
				w.row("key", d.Key)
				w.row("reason", d.Reason)
				w.row("at", d.At.UTC().Format(time.RFC3339Nano))
				w.row("attempts", d.Attempts)
				w.row("enqueued", d.EnqueuedAt.UTC().Format(time.RFC3339Nano))
				for _, k := range sortedKeys(d.Headers) {
					w.row("header "+k, d.Headers[k])
				}
				trunc := ""
				if d.PayloadTruncated {
					trunc = ", truncated"
				}
				w.row("payload", fmt.Sprintf("%d bytes, %s%s", d.PayloadSize, d.PayloadEncoding, trunc))
				w.flush()
				fmt.Fprintln(c.stdout, d.Payload)
			})
			return nil
		}),
	}

	action := func(name, short string) *cobra.Command {
		k := &cobra.Command{
			Use: name + " QUEUE [ID...]", Short: short, Args: cobra.MinimumNArgs(1),
			RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
				body := control.DeadAction{IDs: args[1:], All: flt.all, DryRun: flt.dry,
					Filter: control.DeadFilter{Kind: flt.kind, Reason: flt.reason}}
				var err error
				if body.Filter.Since, err = ctlTime(flt.since, "since"); err != nil {
					return err
				}
				if body.Filter.Until, err = ctlTime(flt.until, "until"); err != nil {
					return err
				}
				var res control.DeadResult
				raw, err := cl.do(ctx, "POST", control.Prefix+"/queues/"+url.PathEscape(args[0])+"/dead/"+name, body, &res)
				if err != nil {
					return err
				}
				c.show(raw, func(w *tabw) {
					if res.DryRun {
						w.note(fmt.Sprintf("dry run: %d dead letters would be %s", res.Matched, pastTense(name)))
					} else {
						w.note(fmt.Sprintf("%s %d of %d", pastTense(name), res.Done, res.Matched))
					}
					for _, f := range res.Failed {
						w.row("failed", f.ID, f.Error)
					}
				})
				if len(res.Failed) > 0 {
					return &ctlError{code: ExitFailure, msg: fmt.Sprintf("%s: %d not done", name, len(res.Failed))}
				}
				return nil
			}),
		}
		filterFlags(k)
		k.Flags().BoolVar(&flt.all, "all", false, "every dead letter of the queue (needed when no id and no filter is given)")
		k.Flags().BoolVar(&flt.dry, "dry-run", false, "only count what would be done")
		return k
	}
	cmd.AddCommand(list, show, action("redrive", "re-drive dead letters (ids, a filter, or --all)"), action("purge", "delete dead letters (ids, a filter, or --all)"))
	return cmd
}

func pastTense(action string) string {
	if action == "redrive" {
		return "re-driven"
	}
	return "purged"
}

func ctlTime(s, flag string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usageError{fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", flag, s)}
	}
	return t, nil
}

func (c *ctl) poolCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Short: "list, pause, resume and resize worker pools", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("pool: want list, pause, resume, resize or clear")
		}}
	showPool := func(raw []byte, p control.Pool) {
		c.show(raw, func(w *tabw) { poolTable(w, []control.Pool{p}) })
	}
	act := func(use, short, path string, args cobra.PositionalArgs, body func([]string) (any, error)) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: args,
			RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
				b, err := body(args)
				if err != nil {
					return err
				}
				method := "POST"
				if path == "override" {
					method = "DELETE"
				}
				var p control.Pool
				raw, err := cl.do(ctx, method, control.Prefix+"/pools/"+url.PathEscape(args[0])+"/"+path, b, &p)
				if err != nil {
					return err
				}
				showPool(raw, p)
				return nil
			})}
	}
	none := func([]string) (any, error) { return nil, nil }
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "every pool's state, size and override", Args: cobra.NoArgs,
		RunE: c.run(func(ctx context.Context, cl *ctlClient, _ []string) error {
			var out struct{ Pools []control.Pool }
			raw, err := cl.do(ctx, "GET", control.Prefix+"/pools", nil, &out)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) { poolTable(w, out.Pools) })
			return nil
		})},
		act("pause QUEUE", "pause a pool: it finishes what runs and takes nothing new", "pause", cobra.ExactArgs(1), none),
		act("resume QUEUE", "resume a pool", "resume", cobra.ExactArgs(1), none),
		act("resize QUEUE SIZE", "set a pool's number of workers", "resize", cobra.ExactArgs(2), func(args []string) (any, error) {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return nil, usageError{fmt.Errorf("resize: size %q: want a whole number of at least 1", args[1])}
			}
			return control.Resize{Size: n}, nil
		}),
		act("clear QUEUE", "clear a pool's override: configured size, running", "override", cobra.ExactArgs(1), none),
	)
	return cmd
}

func poolTable(w *tabw, pools []control.Pool) {
	w.row("QUEUE", "STATE", "WORKERS", "CONFIGURED", "BUSY", "SUCCEEDED", "FAILED", "DEAD", "OVERRIDE")
	for _, p := range pools {
		ov := "-"
		if p.Override != nil {
			var parts []string
			if p.Override.Paused {
				parts = append(parts, "paused")
			}
			if p.Override.Size > 0 {
				parts = append(parts, "size="+strconv.Itoa(p.Override.Size))
			}
			ov = strings.Join(parts, ",")
			if !p.OverridesDurable {
				ov += " (until restart)"
			}
		}
		w.row(p.Queue, p.State, p.Stats.Workers, p.Configured, p.Stats.InFlight, p.Stats.Succeeded, p.Stats.Failed, p.Stats.Dead, ov)
	}
}

func (c *ctl) sourceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "source", Short: "list, pause and resume sources", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return errors.New("source: want list, pause or resume") }}
	table := func(w *tabw, raw []byte) {
		var many struct {
			Sources []map[string]any `json:"sources"`
		}
		var rows []map[string]any
		if json.Unmarshal(raw, &many) == nil && many.Sources != nil {
			rows = many.Sources
		} else {
			var one map[string]any
			if json.Unmarshal(raw, &one) == nil {
				rows = []map[string]any{one}
			}
		}
		w.row("SOURCE", "PAUSED", "EMITTED", "ERRORS", "RESTARTS", "LAST ERROR")
		for _, s := range rows {
			w.row(s["name"], s["paused"], s["emitted"], s["errors"], s["restarts"], cut(fmt.Sprint(orDash(s["last_error"])), 60))
		}
	}
	act := func(verb string) *cobra.Command {
		return &cobra.Command{Use: verb + " NAME", Short: verb + " a source", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
				raw, err := cl.do(ctx, "POST", control.Prefix+"/sources/"+url.PathEscape(args[0])+"/"+verb, nil, nil)
				if err != nil {
					return err
				}
				c.show(raw, func(w *tabw) { table(w, raw) })
				return nil
			})}
	}
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "every source's status", Args: cobra.NoArgs,
		RunE: c.run(func(ctx context.Context, cl *ctlClient, _ []string) error {
			raw, err := cl.do(ctx, "GET", control.Prefix+"/sources", nil, nil)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) { table(w, raw) })
			return nil
		})}, act("pause"), act("resume"))
	return cmd
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

func (c *ctl) loglevelCmd() *cobra.Command {
	return &cobra.Command{Use: "loglevel [LEVEL]", Short: "show the log level, or set it (debug, info, warn, error)", Args: cobra.MaximumNArgs(1),
		RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
			var out admin.LogLevel
			var raw []byte
			var err error
			if len(args) == 0 {
				raw, err = cl.do(ctx, "GET", admin.LogLevelPath, nil, &out)
			} else {
				raw, err = cl.do(ctx, "PUT", admin.LogLevelPath, admin.LogLevel{Level: args[0]}, &out)
			}
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) { w.note(out.Level) })
			return nil
		})}
}

// auditPath is the admin server's audit ring.
const auditPath = control.Prefix + "/audit"

func (c *ctl) auditCmd() *cobra.Command {
	var limit int
	var cursor string
	cmd := &cobra.Command{Use: "audit", Short: "the latest state-changing calls: who did what, when, with what result", Args: cobra.NoArgs,
		RunE: c.run(func(ctx context.Context, cl *ctlClient, _ []string) error {
			v := url.Values{}
			if limit > 0 {
				v.Set("limit", strconv.Itoa(limit))
			}
			if cursor != "" {
				v.Set("cursor", cursor)
			}
			var page struct {
				Entries    []admin.AuditEntry `json:"entries"`
				NextCursor string             `json:"next_cursor"`
			}
			raw, err := cl.do(ctx, "GET", auditPath+"?"+v.Encode(), nil, &page)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) {
				w.row("TIME", "IDENTITY", "ROLE", "ACTION", "TARGET", "RESULT", "REMOTE", "ERROR")
				for _, e := range page.Entries {
					w.row(e.Time.UTC().Format(time.RFC3339), e.Identity, e.Role, e.Action, orDash(e.Target), e.Result, e.Remote, cut(fmt.Sprint(orDash(e.Error)), 60))
				}
				if page.NextCursor != "" {
					w.note("more: --cursor " + page.NextCursor)
				}
			})
			return nil
		})}
	cmd.Flags().IntVar(&limit, "limit", 0, "entries per page (default the server's)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue after the page that printed `CURSOR`")
	return cmd
}

func (c *ctl) usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "helpers for admin.auth.users", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return errors.New("users: want hash-password") }}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash-password",
		Short: "read a password from standard input (its first line) and print its bcrypt hash for admin.auth.users",
		Long: `Hash-password reads a password from the first line of standard input and
prints its bcrypt hash (cost 12), the value of password_hash in
admin.auth.users. It calls no server.

  printf '%s' "$PASSWORD" | host ctl users hash-password`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			line, err := bufio.NewReader(c.stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				fmt.Fprintf(c.stderr, "ctl: users hash-password: read standard input: %v\n", err)
				*c.code = ExitFailure
				return nil
			}
			pw := strings.TrimRight(line, "\r\n")
			h, err := auth.HashPassword(pw)
			if err != nil {
				return fmt.Errorf("users hash-password: %w", err)
			}
			fmt.Fprintln(c.stdout, h)
			return nil
		},
	})
	return cmd
}

// cut puts s on one line of at most n runes.
func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
