package jetstream

import "testing"

func TestAckInfo(t *testing.T) {
	for _, c := range []struct {
		reply          string
		delivered, seq uint64
		ok             bool
	}{
		{"$JS.ACK.PLBA_Q_default.plba-workers.3.42.40.1732585000000000000.7", 3, 42, true},
		{"$JS.ACK.hub.ACCHASH.PLBA_Q_default.plba-workers.1.9.9.1732585000000000000.0.tok", 1, 9, true},
		{"$JS.ACK._.ACCHASH.S.C.2.10.11.123.0", 2, 10, true}, // v2 without the random token
		{"$JS.ACK.S.C.x.10.11.123.0", 0, 0, false},
		{"$JS.ACK.S.C.1.0.11.123.0", 0, 0, false},
		{"$JS.ACK.S.C.1.2", 0, 0, false},
		{"_INBOX.abc", 0, 0, false},
		{"", 0, 0, false},
	} {
		d, s, ok := ackInfo(c.reply)
		if ok != c.ok || (ok && (d != c.delivered || s != c.seq)) {
			t.Errorf("ackInfo(%q) = %d, %d, %v; want %d, %d, %v", c.reply, d, s, ok, c.delivered, c.seq, c.ok)
		}
	}
}
