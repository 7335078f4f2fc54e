//go:build race

package jetstream

// raceEnabled: the tests are built with the race detector, under which
// sync.Pool drops a random share of what it is given.
const raceEnabled = true
