package imap

import (
	"context"

	"github.com/emersion/go-imap/v2"
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
// completion connection: the next attempts fetch each of them alone. One
// whose fetch alone ended the connection in RefusedSessionsBeforeSetAside
// consecutive attempts over at least Reconnect.Max is set aside: it is
// no longer fetched, and is taken for a message other than the one
// looked for (its bytes cannot be read to tell), for the life of the
// source; the suspects and counts are forgotten once a batch goes
// through, and a message's once the fetch the connection ended on (its
// envelope, or its body) goes through alone: not another (its envelope
// may come from the server's index while its body never comes). It
// stays where it is, and no dead letter is made for it, as the emission
// does for a message it gives up (refusedTask): it was
// fetched as a candidate for another task's mail (same Message-ID, or
// about the same size), and may be a mail never emitted nor handled,
// that a stand-in would move to the failed folder under a reason that
// is not its own. A mail of the watched mailbox is emitted by the scan,
// which gives it up with its own stand-in if the server fails on it
// there too; one in the failed folder has its dead letter already.

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
	suspect  map[boxUID]fetchKind
	lost     map[boxUID]refusedAlone // fetches alone that ended the connection
	setAside map[boxUID]bool
}

func (cs *completionSuspects) init() {
	cs.suspect = map[boxUID]fetchKind{}
	cs.lost = map[boxUID]refusedAlone{}
	cs.setAside = map[boxUID]bool{}
}

// batchApplied forgets the suspects and the counts of lost fetches once
// a batch went through: what made them no longer holds anything up (the
// messages set aside stay so).
func (cs *completionSuspects) batchApplied() {
	clear(cs.suspect)
	clear(cs.lost)
}

// fetchCarefully calls fetch with uids, messages of box, at once; or,
// when one of them is a suspect, with each alone, but for those set
// aside. what is the fetch (see its suspects).
func (s *Source) fetchCarefully(ctx context.Context, box boxRef, uids []imap.UID, what fetchKind, fetch func([]imap.UID) error) error {
	cs := &s.comp.suspects
	alone := false
	for _, u := range uids {
		_, suspect := cs.suspect[boxUID{box, u}]
		alone = alone || suspect
	}
	if !alone {
		err := fetch(uids)
		if lostConnection(ctx, err) && len(uids) > 1 {
			for _, u := range uids {
				cs.suspect[boxUID{box, u}] = what
			}
		}
		if lostConnection(ctx, err) && len(uids) == 1 {
			s.completionLostAlone(box, uids[0], what, err)
		}
		return err
	}
	for _, u := range uids {
		k := boxUID{box, u}
		if cs.setAside[k] {
			continue
		}
		if l, ok := cs.lost[k]; ok && l.due(s.now(), s.cfg.Reconnect.Max) {
			cs.setAside[k] = true
			delete(cs.lost, k)
			delete(cs.suspect, k)
			s.mu.Lock()
			s.st.CompletionSetAside++
			s.mu.Unlock()
			s.log.Warn("completion: a message the connection ends on whenever it is fetched is set aside: it is taken for another mail than the one looked for, and left where it is",
				zap.String("folder", box.name), zap.Uint32("uid", uint32(u)), zap.String("fetch", string(what)), zap.Int("times", l.sessions))
			continue
		}
		if err := fetch([]imap.UID{u}); err != nil {
			if lostConnection(ctx, err) {
				s.completionLostAlone(box, u, what, err)
			}
			return err
		}
		if cs.suspect[k] == what {
			// The fetch the connection ended on goes through: k is no
			// longer a suspect, its count is forgotten. Not for another
			// fetch: the envelope of a mail may come from the server's
			// index, while its body, which the server dies on, never
			// comes; its count would never reach the set-aside.
			delete(cs.suspect, k)
			delete(cs.lost, k)
		}
	}
	return nil
}

// completionLostAlone counts a fetch of uid alone that ended the
// completion connection with err.
func (s *Source) completionLostAlone(box boxRef, uid imap.UID, what fetchKind, err error) {
	cs := &s.comp.suspects
	k := boxUID{box, uid}
	cs.suspect[k] = what
	l := cs.lost[k]
	l.add(s.now(), err)
	cs.lost[k] = l
	s.log.Warn("completion: the connection ended while fetching one message alone: the server may fail on it",
		zap.String("folder", box.name), zap.Uint32("uid", uint32(uid)), zap.String("fetch", string(what)),
		zap.Int("times", l.sessions), zap.Int("set_aside_after", RefusedSessionsBeforeSetAside), zap.Error(err))
}
