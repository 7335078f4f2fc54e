package imap_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// The watched mailbox deleted and created again under the same name by
// another client (a person cleaning up, a migration tool). Dovecot keeps
// a session that had it selected on the deleted mailbox: NOOP, SEARCH
// and FETCH answer OK from the old view (with an untagged "NO Internal
// error"), and the new mailbox, with its new UIDVALIDITY, shows only to
// a new SELECT.

// deleteAndCreate deletes box and puts msgs into a new box of the same
// name. Dovecot may refuse an APPEND while a session that had the old
// box selected syncs ("NO Mailbox was deleted under us"), and may have
// stored the message all the same (seen in a CI run: the mail was then
// in the box twice): a refused APPEND is tried again only when the box
// did not grow.
func deleteAndCreate(t *testing.T, d *dovecottest.Server, box string, msgs ...[]byte) {
	t.Helper()
	c, err := d.Dial()
	require.NoError(t, err)
	require.NoError(t, c.Delete(box).Wait())
	require.NoError(t, c.Logout().Wait())
	for _, m := range msgs {
		// Dovecot may end a session that reads the box just deleted (a
		// CI run: "search: unexpected EOF"): counted again.
		var before []string
		require.Eventually(t, func() bool {
			var err error
			if before, err = d.MessageIDs(box); err != nil {
				t.Logf("count again: %v", err)
			}
			return err == nil
		}, 10*time.Second, 50*time.Millisecond)
		require.Eventually(t, func() bool {
			err := d.Append(box, m)
			if err == nil {
				return true
			}
			if now, lerr := d.MessageIDs(box); lerr == nil && len(now) > len(before) {
				t.Logf("append answered %v, and stored the message", err)
				return true
			}
			t.Logf("append again: %v", err)
			return false
		}, 10*time.Second, 50*time.Millisecond)
	}
}

// The mail of the new mailbox is emitted within a reconcile interval,
// which selects the mailbox again, and the completions of the deleted
// mailbox's tasks, whose UIDs the new mail has now, move none of it. The
// new mail was never emitted: the source, Connected with a fresh
// LastPoll, searched the deleted mailbox for ever, where every UID it
// found was in flight.
func TestDovecotMailboxCreatedAgainIsWatched(t *testing.T) {
	for _, mode := range []imap.Mode{imap.ModeIdle, imap.ModePoll} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			require.NoError(t, d.Append("Orders", imaptest.Message("1@deleted", "order", "one"), imaptest.Message("2@deleted", "order", "two")))
			cfg := dovecotConfig(d, mode)
			cfg.Mailbox, cfg.Reconcile = "Orders", time.Second
			src := newSource(t, cfg)
			em := &fakeEmitter{}
			start(t, src, em)
			waitEmitted(t, em, 2)
			before := src.Status().UIDValidity

			deleteAndCreate(t, d, "Orders", imaptest.Message("1@created", "order", "one"), imaptest.Message("2@created", "order", "two"))
			require.Eventually(t, func() bool { return em.count() == 4 }, 15*time.Second, 20*time.Millisecond,
				"the new mailbox's mail is emitted; status %+v", src.Status())
			for _, tk := range em.all() {
				complete(t, src, tk, task.Succeeded)
			}
			ids, err := d.MessageIDs("Processed")
			require.NoError(t, err)
			require.ElementsMatch(t, []string{"1@created", "2@created"}, ids)
			require.Zero(t, dovecotCount(t, d, "Orders"))
			time.Sleep(2 * cfg.Reconcile)
			require.Equal(t, 4, em.count(), "each mail emitted once")
			st := src.Status()
			require.NotEqual(t, before, st.UIDValidity)
			require.EqualValues(t, 1, st.UIDValidityChanges)
			require.Zero(t, st.InFlight)
		})
	}
}

// A completion connection opened before the mailbox was deleted and
// created again still finds and moves the mail of the new mailbox (the
// task of another host's source, or of this one once it selected the new
// mailbox): it left the mail in place and counted it completed, as
// "handled already", since it looked in the deleted mailbox.
func TestDovecotCompletionAfterTheMailboxWasCreatedAgain(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("Orders", imaptest.Message("1@recreated", "order", "one")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Mailbox, cfg.Reconcile = "Orders", time.Hour
	old := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, old, em)
	waitEmitted(t, em, 1)
	complete(t, old, em.all()[0], task.Succeeded) // opens its completion connection

	deleteAndCreate(t, d, "Orders", imaptest.Message("2@recreated", "order", "two"))
	fresh := newSource(t, cfg)
	em2 := &fakeEmitter{}
	start(t, fresh, em2)
	waitEmitted(t, em2, 1)
	require.NotEqual(t, em.all()[0].Header(imap.HeaderUIDValidity), em2.all()[0].Header(imap.HeaderUIDValidity))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, old.Complete(ctx, em2.all()[0], task.Succeeded, ""))
	require.NoError(t, old.WaitCompletions(ctx))
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"1@recreated", "2@recreated"}, ids)
	require.Zero(t, dovecotCount(t, d, "Orders"))
}

// A mail without a Message-ID whose mailbox was deleted and created
// again with the same mail in it: the completion of its task finds it by
// size and content and moves it (it found nothing: "no Message-ID:
// cannot find it").
func TestDovecotCompletionFindsMailWithoutMessageIDAfterRecreate(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	mail := imaptest.Message("", "order", "no id")
	require.NoError(t, d.Append("Orders", mail))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Mailbox, cfg.Reconcile = "Orders", time.Hour
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)

	deleteAndCreate(t, d, "Orders", imaptest.Message("other@recreated", "order", "other"), mail)
	complete(t, src, em.all()[0], task.Succeeded)
	require.Equal(t, 1, dovecotCount(t, d, "Processed"))
	ids, err := d.MessageIDs("Orders")
	require.NoError(t, err)
	require.Equal(t, []string{"other@recreated"}, ids)
}
