package jetstream

import "testing"

// TestTokensAreCanonical: queue names survive the round trip, and only
// the encoding encodeToken makes is read back, so a foreign stream such
// as PLBA_Q__71 is never taken for queue "q" (whose stream is PLBA_Q_q).
func TestTokensAreCanonical(t *testing.T) {
	for _, q := range []string{"q", "orders", "mail.in", "a_b", "ü", "x y", "-"} {
		enc := encodeToken(q)
		if got, ok := decodeToken(enc); !ok || got != q {
			t.Errorf("decodeToken(encodeToken(%q) = %q) = %q, %v", q, enc, got, ok)
		}
	}
	for _, s := range []string{"_71", "_4a", "a_", "a_7", "a.b", "a b", ""} {
		if got, ok := decodeToken(s); ok && s != "" {
			t.Errorf("decodeToken(%q) = %q, true; want refused", s, got)
		}
	}
	n := names{prefix: "PLBA"}
	if q, ok := n.queueOfStream("PLBA_Q__71"); ok {
		t.Errorf("foreign stream PLBA_Q__71 taken for queue %q", q)
	}
}
