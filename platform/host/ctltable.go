package host

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// tabw writes aligned tables for `ctl`.
type tabw struct {
	out io.Writer
	tw  *tabwriter.Writer
}

func newTabw(out io.Writer) *tabw {
	return &tabw{out: out, tw: tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)}
}

// row writes one row of cells.
func (w *tabw) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(w.tw, "\t")
		}
		fmt.Fprint(w.tw, c)
	}
	fmt.Fprintln(w.tw)
}

// note writes a line outside the table.
func (w *tabw) note(s string) {
	w.flush()
	fmt.Fprintln(w.out, s)
}

func (w *tabw) flush() { _ = w.tw.Flush() }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
