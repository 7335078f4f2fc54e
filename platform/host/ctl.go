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
	plbalog "github.com/plba/plba/platform/log"
)

// ctlFlags are the flags every `ctl` command shares.
type ctlFlags struct {
	url       string
	tokenFile string
	caFile    string
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
--token-file, or else from the environment variable PLBA_CTL_TOKEN. An
https:// URL is checked against the system's certificate authorities and
those of --ca-file. It prints
tables for people and, with -o json, the API's JSON answer for scripts.

Exit status: 0 done, 1 failed (the call failed, or an action left some
targets undone), 2 usage error, 3 denied (401 without or with a wrong token,
403 for a role too weak: viewers read, operators act, admins also read the
configuration; 429 for an address that sent too many wrong tokens, refused
whatever its token until the time the answer names).`

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
	pf.StringVar(&f.caFile, "ca-file", "", "trust the certificates in `FILE` (PEM) for an https:// --url, beside the system's: a host whose admin.tls certificate a private CA signed")
	pf.StringVarP(&f.output, "output", "o", "table", "output `FORMAT`: table or json")
	pf.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound of one call")

	root.AddCommand(c.queuesCmd(), c.dlqCmd(), c.taskCmd(), c.poolCmd(), c.sourceCmd(), c.loglevelCmd(), c.auditCmd(), c.usersCmd())
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
		if c.f.timeout <= 0 {
			return fmt.Errorf("--timeout %s: want a positive duration, such as 30s", c.f.timeout)
		}
		cl, err := newCtlClient(c.f)
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
			fmt.Fprintf(c.stderr, "ctl: %s\n", printable(err.Error(), true)) // the server's message may quote what came from outside
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
		_, _ = io.WriteString(c.stdout, printable(string(raw), true))
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

func (c *ctl) loglevelCmd() *cobra.Command {
	return &cobra.Command{Use: "loglevel [LEVEL]", Short: "show the log level, or set it (debug, info, warn, error)", Args: cobra.MaximumNArgs(1),
		RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
			var out admin.LogLevel
			var raw []byte
			var err error
			if len(args) == 0 {
				raw, err = cl.do(ctx, "GET", admin.LogLevelPath, nil, &out)
			} else {
				if _, perr := plbalog.ParseLevel(args[0]); perr != nil {
					return usageError{fmt.Errorf("loglevel: %w", perr)}
				}
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
	var cmd *cobra.Command
	cmd = &cobra.Command{Use: "audit", Short: "the latest state-changing calls: who did what, when, with what result", Args: cobra.NoArgs,
		RunE: c.run(func(ctx context.Context, cl *ctlClient, _ []string) error {
			v := url.Values{}
			if cmd.Flags().Changed("limit") {
				if limit < 1 || limit > admin.MaxAuditLimit {
					return usageError{fmt.Errorf("--limit %d: want 1 to %d", limit, admin.MaxAuditLimit)}
				}
				v.Set("limit", strconv.Itoa(limit))
			}
			if cursor != "" {
				v.Set("cursor", cursor)
			}
			var page admin.AuditPage
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
				} else if page.Evicted > 0 {
					w.note(fmt.Sprintf("end of the server's ring: %d older entries dropped from it (they are in the host's log and, on JetStream, in the audit stream)", page.Evicted))
				}
			})
			return nil
		})}
	cmd.Flags().IntVar(&limit, "limit", 0, "entries per page, 1 to 1000 (default the server's, 50)")
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
