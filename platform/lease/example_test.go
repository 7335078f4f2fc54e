package lease_test

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/platform/lease"
)

// One holder per name: a second caller of the same lease waits until the
// first releases it. Local leases do this within one process; a
// JetStream key-value lease (OpenKV) does it across the hosts of a
// cluster, with the same interface.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leases := &lease.Locals{Holder: "host-a"}
	digest := leases.Lease("digest")

	hold, err := digest.Acquire(ctx)
	if err != nil {
		panic(err)
	}
	st := digest.Status()
	fmt.Println(st.Name, "held by", st.Holder, st.Held)

	second := make(chan lease.Hold)
	go func() {
		h, err := leases.Lease("digest").Acquire(ctx) // the same lease: waits
		if err != nil {
			panic(err)
		}
		second <- h
	}()
	select {
	case <-second:
		fmt.Println("taken twice")
	case <-time.After(50 * time.Millisecond):
		fmt.Println("the second caller waits")
	}
	if err := hold.Release(ctx); err != nil {
		panic(err)
	}
	h2 := <-second
	fmt.Println("the second caller holds it after the release")
	_ = h2.Release(ctx)
	// Output:
	// digest held by host-a true
	// the second caller waits
	// the second caller holds it after the release
}
