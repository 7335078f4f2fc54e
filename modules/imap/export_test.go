package imap

import "time"

// PendingCopies is how many in-flight messages have copies recorded, for
// tests that check no bookkeeping is left behind.
func PendingCopies(s *Source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dupes)
}

// LeftInPlace is how many messages the source leaves in the mailbox on
// purpose, for tests that check the record does not grow without bound.
func LeftInPlace(s *Source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.aside)
}

// Suspects is how many messages are suspects (see poison.go), for tests
// that check a suspect is not one for ever.
func Suspects(s *Source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.suspects)
}

// SetCompletionTimeout sets how long one completion batch may take (after
// the dial timeout), for tests of batches cut by it.
func SetCompletionTimeout(s *Source, d time.Duration) {
	s.comp.timeout = d
}
