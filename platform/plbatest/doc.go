// Package plbatest is the test kit for application modules, in the spirit
// of fxtest and River's rivertest: a test starts its module with the whole
// platform on the memory backend, enqueues tasks, runs until every task is
// settled (retries included, on a clock that jumps over back-off delays)
// and asserts what was handled, retried and dead-lettered, and which
// follow-up tasks the handlers enqueued.
//
//	func TestInvoice(t *testing.T) {
//		k := plbatest.Start(t, invoices.Module, plbatest.Config(`
//	invoices:
//	  smtp: 127.0.0.1:2525
//	`))
//		tk, err := invoices.Send.New(invoices.SendArgs{Number: "7"})
//		require.NoError(t, err)
//		k.Enqueue(tk)
//		k.RunUntilIdle()
//		require.Len(t, k.Succeeded(invoices.Send.Name()), 1)
//		plbatest.RequireEnqueued(k, invoices.Send.Name(), invoices.Receipt, invoices.ReceiptArgs{Number: "7"})
//	}
//
// # Time
//
// The kit's Clock runs at real speed and jumps forward: when nothing is
// ready or running but tasks wait for a later time (a retry's back-off, a
// NotBefore), RunUntilIdle moves the clock to the earliest of them, so an
// hour's back-off takes no real time. The memory backend judges due times
// by this clock; a retry's delay, which the pool computes from the real
// time, is carried over onto it. Set NotBefore from Kit.Clock().Now().
// Handler timeouts and lease extensions stay on real time.
//
// # Sources
//
// A module's own sources run as in the host (drive them by feeding what
// they read: a fake mailbox, a test HTTP server). NewSource makes a source
// the test drives itself, for modules that take their input through a
// source.Source.
package plbatest
