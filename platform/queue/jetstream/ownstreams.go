package jetstream

import "strings"

// OwnStream says whether the stream called name is one the backend keeps
// under c's stream prefix (c.WithDefaults's when unset), and which, in
// words for an operator: a work stream (<prefix>_Q_<queue>, one for
// every queue a route names, so every name of that form), the dead-letter
// stream, the stream of finished task keys, an advisory stream
// (<prefix>_ADV_<consumer>) or the pool overrides' bucket
// (KV_<prefix>_OVERRIDES). Whoever names a stream of their own under the
// same server (the admin audit) checks that it is none of these, whose
// subjects and limits the backend sets.
func (c Config) OwnStream(name string) (what string, ok bool) {
	n := names{prefix: c.WithDefaults().StreamPrefix}
	switch {
	case strings.HasPrefix(name, n.streamPrefix()):
		return "a work stream of the host's queues (" + n.streamPrefix() + "<queue>)", true
	case name == n.deadStream():
		return "the host's dead-letter stream", true
	case name == n.doneStream():
		return "the host's stream of finished task keys", true
	case strings.HasPrefix(name, n.advisoryPrefix()):
		return "an advisory stream of the host's consumers (" + n.advisoryPrefix() + "<consumer>)", true
	case name == "KV_"+n.overridesBucket():
		return "the key-value bucket of the pool overrides (KV_" + n.overridesBucket() + ")", true
	}
	return "", false
}
