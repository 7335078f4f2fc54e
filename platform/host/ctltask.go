package host

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plba/plba/platform/control"
)

// taskCmd looks a task up by id or by key wherever the backend keeps it.
func (c *ctl) taskCmd() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "task QUEUE [ID]",
		Short: "find a task by id, or the tasks with --key, wherever the backend keeps them (ready, delayed, in flight, dead, finished)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: c.run(func(ctx context.Context, cl *ctlClient, args []string) error {
			switch {
			case len(args) == 2 && key != "":
				return usageError{errors.New("task: give an ID or --key, not both")}
			case len(args) < 2 && key == "":
				return usageError{errors.New("task: give a task ID or --key KEY")}
			}
			path := control.Prefix + "/queues/" + url.PathEscape(args[0]) + "/tasks"
			if key != "" {
				path += "?key=" + url.QueryEscape(key)
			} else {
				path += "/" + url.PathEscape(args[1])
			}
			var out control.TaskInfo
			raw, err := cl.do(ctx, "GET", path, nil, &out)
			if err != nil {
				return err
			}
			c.show(raw, func(w *tabw) {
				w.row("STATE", "ID", "KIND", "KEY", "ATTEMPTS", "DUE/AT", "REASON")
				for _, f := range out.Found {
					when := f.DueAt
					if when.IsZero() {
						when = f.At
					}
					at := "-"
					if !when.IsZero() {
						at = when.UTC().Format(time.RFC3339)
					}
					// A key's marker (no task id) keeps no attempt count.
					var attempts any = f.Attempts
					if f.Task.ID == "" {
						attempts = "-"
					}
					w.row(f.State, orDash(f.Task.ID), orDash(f.Task.Kind), orDash(f.Task.Key), attempts, at, orDash(cut(f.Reason, 60)))
				}
				w.note("searched: " + strings.Join(out.Searched, "; "))
				if len(out.NotSearched) > 0 {
					w.note("not searched: " + strings.Join(out.NotSearched, "; "))
				}
			})
			return nil
		}),
	}
	cmd.Flags().StringVar(&key, "key", "", "find the tasks with this de-duplication `KEY`")
	return cmd
}
