package imap

import (
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"
)

// emitted is an in-flight message: emitted, its task not completed yet.
type emitted struct {
	uid      imap.UID
	validity uint32
	at       time.Time
	// completing: its task is done and the completion is queued (see
	// Complete); the reaper leaves it alone, the completion loop ends it.
	completing bool
}

// reapStale forgets the in-flight messages whose task has not completed
// within InFlightTimeout and moves the cursor back so the next scan finds
// them again: to the lowest UID known for the message under the current
// UIDVALIDITY, its own or a copy's (after a UIDVALIDITY change the
// message is known by the copy the rescan found). A task can vanish
// without a completion: a backend that drops a re-emitted key as a
// duplicate of one it already acked (the message was put back into the
// mailbox), or a task purged from the dead letter. Emitting it again is
// safe: a task still queued under the key is de-duplicated by the backend.
func (s *Source) reapStale(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.inflight {
		if e.completing || now.Sub(e.at) < s.cfg.InFlightTimeout {
			continue
		}
		var low imap.UID
		if e.validity == s.uidValidity {
			low = e.uid
		}
		if d, ok := s.dupes[key]; ok && d.validity == s.uidValidity {
			for _, u := range d.uids {
				if low == 0 || u < low {
					low = u
				}
			}
		}
		delete(s.inflight, key)
		delete(s.dupes, key)
		if low > 0 && low-1 < s.lastUID {
			s.lastUID = low - 1
		}
		s.st.Reemitted++
		s.log.Warn("task not completed in time: the message will be emitted again",
			zap.String("key", key), zap.Uint32("uid", uint32(e.uid)), zap.Uint32("rescan_from", uint32(low)),
			zap.Duration("inflight_timeout", s.cfg.InFlightTimeout))
	}
	s.st.InFlight = len(s.inflight)
	s.st.LastUID = uint32(s.lastUID)
}

// dupe is the UIDs of the extra copies of one message, under the
// UIDVALIDITY they were seen with.
type dupe struct {
	validity uint32
	uids     []imap.UID
}

// addDupe records uid as another copy of the in-flight message key and
// reports true, or reports false when key is not in flight: the copy is
// then a message of its own, to be emitted. The caller holds s.mu.
func (s *Source) addDupe(key string, uid imap.UID) bool {
	e, ok := s.inflight[key]
	if !ok {
		return false
	}
	if e.uid == uid && e.validity == s.uidValidity {
		return true // the in-flight message itself, seen again after a rescan
	}
	d := s.dupes[key]
	if d.validity != s.uidValidity {
		d = dupe{validity: s.uidValidity}
	}
	if !slices.Contains(d.uids, uid) {
		d.uids = append(d.uids, uid)
	}
	s.dupes[key] = d
	s.log.Debug("another copy of an in-flight message: settled with it", zap.String("key", key), zap.Uint32("uid", uint32(uid)))
	return true
}

// dupesOf returns the extra copies of key seen under validity.
func (s *Source) dupesOf(key string, validity uint32) []imap.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dupes[key]
	if !ok || d.validity != validity {
		return nil
	}
	return slices.Clone(d.uids)
}

// forgetSettled removes the copies in settled from key's and returns
// those left: copies recorded after the completion read them. The caller
// holds s.mu.
func (s *Source) forgetSettled(key string, settled dupe) []imap.UID {
	d, ok := s.dupes[key]
	if !ok {
		return nil
	}
	if d.validity == settled.validity {
		d.uids = slices.DeleteFunc(d.uids, func(u imap.UID) bool { return slices.Contains(settled.uids, u) })
	}
	if len(d.uids) == 0 {
		delete(s.dupes, key)
		return nil
	}
	s.dupes[key] = d
	return d.uids
}

// dropDupes forgets key's copies. With rescan, those seen under the
// current UIDVALIDITY are scanned again (see Source.rescan); under
// another one their UIDs are void, and the rescan that followed the
// change finds them. The caller holds s.mu.
func (s *Source) dropDupes(key string, rescan bool) {
	d, ok := s.dupes[key]
	if !ok {
		return
	}
	delete(s.dupes, key)
	if !rescan || d.validity != s.uidValidity {
		return
	}
	for _, u := range d.uids {
		if s.rescan == 0 || u < s.rescan {
			s.rescan = u
		}
	}
	s.log.Warn("copies of a completed message left unsettled: scanning them again",
		zap.String("key", key), zap.Uint32s("uids", uidsOf(d.uids)))
}

func uidsOf(uids []imap.UID) []uint32 {
	out := make([]uint32, len(uids))
	for i, u := range uids {
		out[i] = uint32(u)
	}
	return out
}
