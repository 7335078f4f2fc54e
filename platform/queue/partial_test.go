package queue_test

import (
	"testing"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TestStoredCountsCostNoAllocationForAStoredBatch: counting what an
// Enqueue stored is on every producer's path; a batch stored whole (err
// nil) allocates nothing for it.
func TestStoredCountsCostNoAllocationForAStoredBatch(t *testing.T) {
	batch := []*task.Task{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		pe := queue.PartialOf(nil)
		queue.EachOnce(batch, func(t *task.Task) {
			if queue.Stored(t, nil, pe) {
				n++
			}
		})
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per count of a stored batch, want 0", allocs)
	}
	if n != 3*101 { // AllocsPerRun runs it once more to warm up
		t.Fatalf("counted %d stored, want %d", n, 3*101)
	}
}
