package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
)

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
	var list *cobra.Command
	list = &cobra.Command{
		Use: "list QUEUE", Short: "a page of dead letters (no payloads)", Args: cobra.ExactArgs(1),
		RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
			if _, _, err := ctlRange(flt.since, flt.until); err != nil {
				return err
			}
			v := url.Values{}
			for k, s := range map[string]string{"kind": flt.kind, "reason": flt.reason, "since": flt.since, "until": flt.until, "cursor": flt.cursor} {
				if s != "" {
					v.Set(k, s)
				}
			}
			if list.Flags().Changed("limit") {
				if flt.limit < 1 || flt.limit > queue.MaxDeadLimit {
					return usageError{fmt.Errorf("--limit %d: want 1 to %d", flt.limit, queue.MaxDeadLimit)}
				}
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
				fmt.Fprintln(c.stdout, printable(d.Payload, true))
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
				if body.Filter.Since, body.Filter.Until, err = ctlRange(flt.since, flt.until); err != nil {
					return err
				}
				// As the server would refuse it: a usage error, nothing sent.
				byFilter := body.Filter != (control.DeadFilter{})
				switch {
				case len(body.IDs) == 0 && !byFilter && !body.All:
					return usageError{fmt.Errorf("%s: select dead letters: ids, a filter (--kind, --reason, --since, --until) or --all", name)}
				case len(body.IDs) > 0 && (byFilter || body.All):
					return usageError{fmt.Errorf("%s: select dead letters by ids or by a filter (or --all), not both", name)}
				case len(body.IDs) > control.MaxDeadActionIDs:
					return usageError{fmt.Errorf("%s: %d ids: at most %d per call (split the list, or select by a filter)", name, len(body.IDs), control.MaxDeadActionIDs)}
				}
				var res control.DeadResult
				raw, err := cl.do(ctx, "POST", control.Prefix+"/queues/"+url.PathEscape(args[0])+"/dead/"+name, body, &res)
				if err != nil {
					// An action the API stopped midway answers an error
					// status with what it knows (done, unknown, not
					// tried): shown, then the error.
					if !stoppedResult(raw, &res) {
						return err
					}
				}
				c.show(raw, func(w *tabw) {
					switch {
					case res.DryRun:
						w.note(fmt.Sprintf("dry run: %d dead letters would be %s", res.Matched, pastTense(name)))
					case res.Matched == 0 && len(body.IDs) > 0:
						// No id given is a dead letter of the queue: each
						// is listed failed below with the server's why.
						w.note("nothing " + pastTense(name))
					case res.Matched == 0:
						w.note(fmt.Sprintf("nothing %s: no dead letter of queue %s selected", pastTense(name), args[0]))
					default:
						w.note(fmt.Sprintf("%s %d of %d", pastTense(name), res.Done, res.Matched))
					}
					if res.Gone > 0 {
						w.note(fmt.Sprintf("%d no longer dead letters, not %s by this call: another call re-drove or purged them meanwhile", res.Gone, pastTense(name)))
					}
					for _, f := range res.Failed {
						w.row("failed", f.ID, f.Error)
					}
					if res.Unknown > 0 {
						w.note(fmt.Sprintf("%d unknown: the backend failed on them and what it did could not be checked (dlq list shows what is still dead)", res.Unknown))
					}
					if res.NotTried > 0 {
						w.note(fmt.Sprintf("%d not tried: the action stopped first", res.NotTried))
					}
				})
				if err != nil {
					return err
				}
				if n := len(res.Failed) + res.Gone; n > 0 {
					return &ctlError{code: ExitFailure, msg: fmt.Sprintf("%s: %d not done", name, n)}
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

// stoppedResult decodes into res the answer of a re-drive or purge the
// API stopped midway: an error status whose body is a DeadResult with
// its error. It reports whether raw is one.
func stoppedResult(raw []byte, res *control.DeadResult) bool {
	var has struct {
		Matched *int `json:"matched"`
	}
	if json.Unmarshal(raw, &has) != nil || has.Matched == nil || json.Unmarshal(raw, res) != nil {
		return false
	}
	return res.Error != ""
}

func pastTense(action string) string {
	if action == "redrive" {
		return "re-driven"
	}
	return "purged"
}

// ctlRange parses --since and --until and refuses a range that holds
// nothing (since at or after until), as the server would, as a usage
// error.
func ctlRange(since, until string) (s, u time.Time, err error) {
	if s, err = ctlTime(since, "since"); err != nil {
		return s, u, err
	}
	if u, err = ctlTime(until, "until"); err != nil {
		return s, u, err
	}
	if !s.IsZero() && !u.IsZero() && !s.Before(u) {
		return s, u, usageError{fmt.Errorf("--since %s is not before --until %s: the range holds nothing", since, until)}
	}
	return s, u, nil
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
