package source_test

import (
	"fmt"
	"time"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
)

// A job that ran in a timer loop becomes a schedule: one task of kind
// "report.nightly" at 02:30 Berlin time, keyed by its due time so that
// the backend keeps one per cluster, run on one host at a time (a local
// lease here; lease.OpenKV(...).Lease(name) on a cluster), and caught up
// once when every host was down at 02:30. In a host the result is
// provided with source.AsSource and the kind gets a handler route.
func ExampleCron() {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	nightly, err := source.Cron("nightly-report", "30 2 * * *", "report.nightly",
		source.InLocation(berlin),
		source.OnMissed(source.CatchUpOnce),
		source.WithMarks(&source.MemoryMarks{}), // lease.OpenMarks on a cluster
	)
	if err != nil {
		panic(err)
	}
	src := source.Exclusive(nightly, lease.NewLocal(nightly.Name(), "this-host"))
	fmt.Println(src.Name())
	fmt.Println(nightly.Key(time.Date(2026, 12, 5, 2, 30, 0, 0, berlin)))
	// Output:
	// nightly-report
	// nightly-report@2026-12-05T01:30:00Z
}
