package memserver

import (
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// idleRepoll bounds how long an update can wait unseen by an idling
// client (see session.Idle).
const idleRepoll = 100 * time.Millisecond

// session is one connection's session on the single account. It embeds
// go-imap's UserSession (nil until LOGIN), which keeps every optional
// capability (MOVE, NAMESPACE) it implements, and fixes its IDLE.
type session struct {
	*imapmemserver.UserSession
	user *imapmemserver.User
	idle *idlers
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)

// Login checks the credentials and opens the user's session.
func (s *session) Login(username, password string) error {
	if err := s.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.user)
	return nil
}

// Close releases the selected mailbox, if any.
func (s *session) Close() error {
	if s.UserSession == nil {
		return nil
	}
	return s.UserSession.Close()
}

// Idle reports mailbox updates until stop is closed.
//
// go-imap's SessionTracker.Idle (v2.0.0-beta.8) only reports updates
// queued after it started waiting: one queued between the client's last
// command and its IDLE (a mail appended while the client was busy) stays
// unreported until the client sends another command, so an idling client
// never hears of it. Real servers send pending updates when IDLE starts.
// This polls the pending updates first and then again every idleRepoll
// (re-entering the tracker's Idle each time), which closes the window
// between that poll and the tracker's registration as well.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.UserSession == nil {
		return nil
	}
	s.idle.add(1)
	defer s.idle.add(-1)
	for {
		if err := s.Poll(w, true); err != nil {
			return err
		}
		round := make(chan struct{})
		quit := make(chan struct{})
		done := make(chan struct{})
		go func() { // owned by this round: quit ends it, done confirms
			defer close(done)
			defer close(round)
			t := time.NewTimer(idleRepoll)
			defer t.Stop()
			select {
			case <-stop:
			case <-t.C:
			case <-quit:
			}
		}()
		err := s.UserSession.Idle(w, round)
		close(quit)
		<-done
		if err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		default:
		}
	}
}
