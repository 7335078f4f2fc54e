package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// A completion that looks for its mail by content (find.go) fetches
// other messages too: those of its Message-ID, or of about its size. One
// the server drops the connection on whenever it is asked for (see
// poison.go) would fail that completion's batch every time, and the
// queue, retried without limit, would never get past it.
//
// So, as the watching session does for emission, a fetch of several
// messages that ends with the connection makes them suspects of the
// completion connection: the next attempts fetch each of them alone,
// those whose fetch alone ended the connection after the others. A
// fetch alone that ends the connection counts against the message only
// when the server proved, on the completion connection and in the same
// attempt, that it serves: it returned the body of another message of
// the mailbox, asked for before the first suspect is fetched alone (the
// scan's control, askControl; metadata proves nothing, as it may come
// from the server's index while its store fails), or a body the lookup
// fetched (see sameContent). The control is no suspect: one the server
// dies on, the only other message of the mailbox, failed it in every
// attempt while the server returned the mail looked for. When that control
// fails too, the server fails as a whole (Dovecot ends the connection on
// every body while its mail store fails): nothing is counted, the batch
// fails and is retried with back-off for as long as it lasts. Without
// that, a store outage of a few seconds set the mail looked for aside:
// not found, it was emitted and handled again (a second order), a
// re-driven dead letter stayed in the failed folder, a COPY was made
// twice. A fetch of one message that ends the connection before any
// proof only makes it a suspect. A control that fails is counted against
// its message, which is asked for after the others next time, and no
// longer once it failed in RefusedSessionsBeforeSetAside attempts over
// Config.RefusalSpan (it proves nothing).
//
// One whose fetch alone ended the connection in
// RefusedSessionsBeforeSetAside consecutive attempts, the last with
// that proof, over at least Reconnect.Max is set aside. When the mailbox holds no other message to
// ask for (nor one answering with something, nor one that has not failed
// the control over RefusalSpan), the drops are counted all the same, so
// that a mail the server dies on does not stall every completion behind
// it for ever; they must then span Config.RefusalSpan (the scan's span
// for a failure that is not a moment's, one minute by default) too. So a
// store outage shorter than RefusalSpan sets nothing aside; a longer one
// may (with other mail in the mailbox, once every other mail failed the
// control over RefusalSpan and the drops spanned it once more: logged,
// and counted in Status.CompletionSetAside). A message set aside is no
// longer fetched, and is taken for a message other than the one looked
// for (its bytes cannot be read to tell), for the life of the source;
// the suspects and counts are forgotten once a batch goes through, and a
// message's once the fetch the connection ended on (its envelope, or its
// body) goes through alone: not another (its envelope may come from the
// server's index while its body never comes). It stays where it is, and
// no dead letter is made for it, as the emission does for a message it
// gives up (refusedTask): it was fetched as a candidate for another
// task's mail (same Message-ID, or about the same size), and may be a
// mail never emitted nor handled, that a stand-in would move to the
// failed folder under a reason that is not its own. A mail of the
// watched mailbox is emitted by the scan, which gives it up with its own
// stand-in if the server fails on it there too; one in the failed folder
// has its dead letter already.
//
// A body a lookup fetches that the server answers with nothing in it
// while its RFC822.SIZE is above 0 is no answer (see sameContent): it
// counts as a fetch that ended the connection, rather than be taken for
// another mail's and the mail looked for not found; over RefusalSpan
// whatever the proof, as the emission gives up such a mail.

// boxRef is a mailbox as the completion connection selected it.
type boxRef struct {
	name     string
	validity uint32
}

// boxUID is a message of a mailbox.
type boxUID struct {
	box boxRef
	uid imap.UID
}

// completionSuspects is what the completion loop knows of the messages
// the server may fail on. It is owned by the loop goroutine, and outlives
// the loop's connections.
type completionSuspects struct {
	// suspect: fetched alone from now on, with the fetch the connection
	// ended on.
	suspect map[boxUID]fetchKind
	// lost: fetches alone that ended the connection, counted (see
	// completionLostAlone); unproven: the last of them was counted with
	// no other message to prove against, or was a body returned empty
	// (it is due over RefusalSpan).
	lost     map[boxUID]refusedAlone
	unproven map[boxUID]bool
	setAside map[boxUID]bool
	// controlFailures: the controls of a message that failed, or that
	// the server answered with nothing: it is asked for after the others,
	// and no longer once they are due (see proveOnCompletion).
	controlFailures map[boxUID]refusedAlone
	// Of the current attempt (see attemptBegins): the mailboxes where the
	// server returned the body of a control (proven), and those where it
	// answered the control with nothing (noControl). That a mailbox holds
	// no other message to ask for is not kept: it is told for each
	// message asked for (the message itself, and the suspects, are no
	// control; one of them fetched fine is one for the next).
	proven, noControl map[boxRef]bool
}

func (cs *completionSuspects) init() {
	cs.suspect = map[boxUID]fetchKind{}
	cs.lost = map[boxUID]refusedAlone{}
	cs.unproven = map[boxUID]bool{}
	cs.setAside = map[boxUID]bool{}
	cs.controlFailures = map[boxUID]refusedAlone{}
	cs.proven = map[boxRef]bool{}
	cs.noControl = map[boxRef]bool{}
}

// attemptBegins forgets what the last attempt at a batch proved: a proof
// holds for the attempt (one connection, the mailbox selected again) it
// was made in.
func (cs *completionSuspects) attemptBegins() {
	clear(cs.proven)
	clear(cs.noControl)
}

// batchApplied forgets the suspects and the counts of lost fetches once
// a batch went through: what made them no longer holds anything up (the
// messages set aside stay so).
func (cs *completionSuspects) batchApplied() {
	clear(cs.suspect)
	clear(cs.lost)
	clear(cs.unproven)
	clear(cs.controlFailures)
}

// fetchCarefully calls fetch with uids, messages of box (selected on c),
// but for those set aside (not at all when none is left), at once; or,
// when one of them is a suspect, with each alone, the server asked
// first to prove that it serves (see proveOnCompletion). what names the
// fetch in the log.
func (s *Source) fetchCarefully(ctx context.Context, c *imapclient.Client, box boxRef, uids []imap.UID, what fetchKind, fetch func([]imap.UID) error) error {
	cs := &s.comp.suspects
	// A message set aside is fetched no more, in a group or alone: it is
	// no suspect any longer (see below), and fetched among the others it
	// ended the connection again in every lookup that read it.
	uids = slices.DeleteFunc(slices.Clone(uids), func(u imap.UID) bool { return cs.setAside[boxUID{box, u}] })
	if len(uids) == 0 {
		return nil
	}
	alone := false
	for _, u := range uids {
		_, suspect := cs.suspect[boxUID{box, u}]
		alone = alone || suspect
	}
	if !alone {
		err := fetch(uids)
		if lostConnection(ctx, err) {
			for _, u := range uids {
				cs.suspect[boxUID{box, u}] = what
			}
			if len(uids) == 1 && cs.proven[box] {
				s.completionLostAlone(box, uids[0], what, err)
			}
		}
		return err
	}
	for _, u := range cs.lostLast(box, uids) {
		k := boxUID{box, u}
		if cs.setAside[k] {
			continue
		}
		if l, ok := cs.lost[k]; ok && l.due(s.now(), s.completionSpan(k)) {
			cs.setAside[k] = true
			delete(cs.lost, k)
			delete(cs.unproven, k)
			delete(cs.suspect, k)
			s.mu.Lock()
			s.st.CompletionSetAside++
			s.mu.Unlock()
			s.log.Warn("completion: a message the connection ends on whenever it is fetched is set aside: it is taken for another mail than the one looked for, and left where it is",
				zap.String("folder", box.name), zap.Uint32("uid", uint32(u)), zap.String("fetch", string(what)), zap.Int("times", l.sessions))
			continue
		}
		proven, err := s.proveOnCompletion(ctx, c, box, u)
		if err != nil {
			return err
		}
		if err := fetch([]imap.UID{u}); err != nil {
			if lostConnection(ctx, err) {
				// The last drop says over which span they count (see
				// completionSpan): the server proved it serves before
				// it, or not. A body returned empty counts over
				// RefusalSpan whatever the proof, as the emission's
				// refusals (a server may answer so for a while, and the
				// mail looked for, set aside, is not found).
				if proven = proven || cs.proven[box]; proven && !errors.Is(err, errReturnedEmpty) {
					delete(cs.unproven, k)
				} else {
					cs.unproven[k] = true
				}
				s.completionLostAlone(box, u, what, err)
			}
			return err
		}
		if cs.suspect[k] == what {
			// The fetch the connection ended on goes through: k is no
			// longer a suspect, its count is forgotten. Not for another
			// fetch: the envelope of a mail may come from the server's
			// index, while its body, which the server dies on, never
			// comes; that count would never reach the set-aside.
			delete(cs.suspect, k)
			delete(cs.lost, k)
			delete(cs.unproven, k)
		}
	}
	return nil
}

// lostLast returns uids, messages of box, those with fetches alone that
// ended the connection (lost) after the others: the others' bodies,
// returned, prove that the server serves before those are asked for
// (see served).
func (cs *completionSuspects) lostLast(box boxRef, uids []imap.UID) []imap.UID {
	out := slices.Clone(uids)
	slices.SortStableFunc(out, func(a, b imap.UID) int {
		_, la := cs.lost[boxUID{box, a}]
		_, lb := cs.lost[boxUID{box, b}]
		switch {
		case la == lb:
			return 0
		case lb:
			return -1
		}
		return 1
	})
	return out
}

// served records that the server returned, in this attempt, a body with
// something in it of a message of box a lookup fetched (see
// sameContent): it serves, as when it returns the control's (see
// proveOnCompletion).
func (cs *completionSuspects) served(box boxRef) {
	cs.proven[box] = true
}

// completionSpan is the shortest span over which the fetches alone of k
// must have ended the connection for it to be set aside: Reconnect.Max,
// or, when the last was counted with no proof that the server serves
// (no other message to ask for), or was a body returned empty, the
// scan's refusalSpan.
func (s *Source) completionSpan(k boxUID) time.Duration {
	if s.comp.suspects.unproven[k] {
		return s.cfg.refusalSpan()
	}
	return s.cfg.Reconnect.Max
}

// proveOnCompletion is asked before u, a suspect of box (selected on c),
// is fetched alone: unless the server returned the body of a control in
// box in this attempt, it asks for the first KiB of the body of another
// message of box (askControl), neither set aside nor a suspect (a fetch
// ended the connection on it), the one that failed the fewest controls.
// proven: the server returned it, and a connection then ending on u counts
// against u. Not proven, and no error, when box holds no such message,
// or the control's was answered with nothing: the drops are counted
// over a longer span (see completionSpan). A message that failed the
// control in RefusedSessionsBeforeSetAside attempts over RefusalSpan is
// no such message: it proves nothing (a mail the server fails on too),
// and a mailbox of such mail would otherwise hold up the completions for
// ever; a store outage shorter than RefusalSpan makes none. The error when the control
// fails, the server failing as a whole: nothing is counted, the batch
// fails and is retried with back-off (a sessionError: not a refusal of
// the batch's messages).
func (s *Source) proveOnCompletion(ctx context.Context, c *imapclient.Client, box boxRef, u imap.UID) (proven bool, err error) {
	cs := &s.comp.suspects
	if cs.proven[box] || cs.noControl[box] {
		return cs.proven[box], nil
	}
	s.comp.conn.arm("UID SEARCH", s.cfg.mailboxBudget(c))
	data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err = s.comp.conn.done(err); err != nil {
		return false, fmt.Errorf("control: uid search: %w", err)
	}
	all, err := searchUIDs(c, data)
	if err != nil {
		return false, fmt.Errorf("control: uid search: %w", err)
	}
	var others []imap.UID
	failed := map[imap.UID]int{}
	now := s.now()
	for _, o := range all {
		k := boxUID{box, o}
		cf := cs.controlFailures[k]
		// A suspect, a message a fetch ended the connection on, may be
		// one the server dies on: the control would fail on it while
		// the server serves, and hold up the completion.
		if _, suspect := cs.suspect[k]; o != u && !suspect && !cs.setAside[k] && !cf.due(now, s.cfg.refusalSpan()) {
			others = append(others, o)
			failed[o] = cf.sessions
		}
	}
	if len(others) == 0 {
		// Not kept for the attempt: the mail looked for, excluded here
		// (u) or a suspect, may be the control of the next message once
		// its fetch went through; were "none" kept, the drops of a mail
		// the server dies on beside it would count over RefusalSpan, every
		// completion waiting for it, while the server returns that mail.
		return false, nil
	}
	o, served, err := s.askControl(c, s.comp.conn, others, failed)
	k := boxUID{box, o}
	if err != nil {
		if ctx.Err() == nil {
			cf := cs.controlFailures[k]
			cf.add(s.now(), err)
			cs.controlFailures[k] = cf
		}
		s.log.Warn("completion: the server returns no other mail either: nothing counted against the message looked at, retrying",
			zap.String("folder", box.name), zap.Uint32("uid", uint32(u)), zap.Uint32("control_uid", uint32(o)), zap.Error(err))
		return false, sessionError{fmt.Errorf("the connection ended on a message of %q fetched alone before, and the server returns the body of no other either (none counted): control: %w", box.name, err)}
	}
	if !served {
		cf := cs.controlFailures[k]
		cf.add(s.now(), errNoControl)
		cs.controlFailures[k] = cf
		cs.noControl[box] = true
		return false, nil
	}
	delete(cs.controlFailures, k)
	cs.proven[box] = true
	return true, nil
}

// completionLostAlone counts a fetch of uid alone that ended the
// completion connection with err, or whose body came back empty
// (errReturnedEmpty, see sameContent).
func (s *Source) completionLostAlone(box boxRef, uid imap.UID, what fetchKind, err error) {
	cs := &s.comp.suspects
	k := boxUID{box, uid}
	cs.suspect[k] = what
	l := cs.lost[k]
	l.add(s.now(), err)
	l.what = what
	cs.lost[k] = l
	s.log.Warn("completion: the connection ended while fetching one message alone, or its body came back empty: the server may fail on it",
		zap.String("folder", box.name), zap.Uint32("uid", uint32(uid)), zap.String("fetch", string(what)),
		zap.Int("times", l.sessions), zap.Int("set_aside_after", RefusedSessionsBeforeSetAside),
		zap.Bool("proven", !cs.unproven[k]), zap.Error(err))
}
