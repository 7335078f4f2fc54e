package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/worker"
)

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
			if err != nil || n < 1 || n > worker.MaxConcurrency {
				return nil, usageError{fmt.Errorf("resize: size %q: want a whole number from 1 to %d", args[1], worker.MaxConcurrency)}
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
		w.row("SOURCE", "STATE", "PAUSED", "EMITTED", "ERRORS", "RESTARTS", "LAST POLL", "LAST ERROR")
		for _, s := range rows {
			w.row(s["name"], orDash(s["state"]), s["paused"], s["emitted"], s["errors"], s["restarts"], orDash(s["last_poll"]),
				cut(fmt.Sprint(orDash(s["last_error"])), 60))
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
