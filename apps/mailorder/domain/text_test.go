package domain_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/store/storetest"
)

// cleanTextProblem returns what makes s unfit to store as text ("" when
// it is fit): bytes that are not UTF-8, or a control character (tab
// aside).
func cleanTextProblem(s string) string {
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 {
			return "control character"
		}
		if r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return "bidirectional override"
		}
	}
	return ""
}

// orderTextProblems lists the text fields of o that a store could not keep
// as text or a page could not show as is.
func orderTextProblems(o domain.Order) []string {
	fields := map[string]string{
		"id": o.ID, "customer": o.Customer, "customer_name": o.CustomerName, "customer_ref": o.CustomerRef,
		"reference": o.Reference, "message_id": o.MessageID, "subject": o.Subject,
		"attachment_name": o.AttachmentName, "attachment_hash": o.AttachmentHash,
	}
	for i, a := range o.Audit {
		fields["audit "+strings.Repeat("#", i+1)] = a
	}
	for i, l := range o.Lines {
		fields["sku of line "+strings.Repeat("#", i+1)] = l.SKU
	}
	c := o.Confirmation()
	fields["confirmation subject"], fields["confirmation to"] = c.Subject, c.To
	fields["confirmation body (lines)"] = strings.ReplaceAll(c.Body, "\n", "")
	var out []string
	for name, v := range fields {
		if p := cleanTextProblem(v); p != "" {
			out = append(out, name+": "+p+": "+strings.ToValidUTF8(v, "?"))
		}
	}
	return out
}

// A mail whose headers, file names and JSON strings hold 8-bit bytes, NULs
// and control characters still yields its orders, with text every store
// keeps (PostgreSQL refused such an order, so a valid order mail was
// retried and dead-lettered as a store failure), and says so in the audit.
func TestHostileTextIsCleanedAndNoted(t *testing.T) {
	t.Parallel()
	orders, m, err := domain.BuildOrders([]byte(storetest.HostileMail), domain.Config{})
	require.NoError(t, err)
	require.Len(t, orders, 2)
	for _, o := range orders {
		require.Empty(t, orderTextProblems(o), "order %s", o.ID)
	}
	require.Equal(t, "Müller\ufffd\ufffd", m.FromName)
	require.Equal(t, "Bestellung f\ufffdr Köln\ufffd", m.Subject)
	require.Equal(t, "bestellung-k\ufffdln.csv", orders[0].AttachmentName)
	require.Equal(t, "C-\ufffd-1", orders[1].CustomerRef)
	require.Equal(t, "PO\ufffd\ufffd[31m", orders[1].Reference)
	require.True(t, strings.HasPrefix(m.MessageID, "msgid-sha256-"), m.MessageID)
	require.True(t, strings.HasSuffix(m.MessageID, "@mailorder.invalid"), m.MessageID)
	audit := strings.Join(orders[1].Audit, "\n")
	for _, want := range []string{`Message-ID "bestellung-\xfc-1@example.com"`, "sender name held", "subject held", "reference held", "customer held"} {
		require.Contains(t, audit, want)
	}
}

// The Message-ID is half of an order's identity: two mails whose ids
// differ only in bytes that are not text keep their orders apart, and the
// same mail keeps its order ids.
func TestUncleanMessageIDsStayDistinctAndStable(t *testing.T) {
	t.Parallel()
	mail := func(id string) []byte {
		return []byte("From: a@example.com\r\nMessage-ID: <" + id + ">\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n")
	}
	a1, _, err := domain.BuildOrders(mail("x\xfc@example.com"), domain.Config{})
	require.NoError(t, err)
	a2, _, err := domain.BuildOrders(mail("x\xfc@example.com"), domain.Config{})
	require.NoError(t, err)
	b, _, err := domain.BuildOrders(mail("x\xfd@example.com"), domain.Config{})
	require.NoError(t, err)
	require.Equal(t, a1[0].ID, a2[0].ID)
	require.NotEqual(t, a1[0].ID, b[0].ID)
	require.NotEqual(t, a1[0].MessageID, b[0].MessageID)
	clean, _, err := domain.BuildOrders(mail("x@example.com"), domain.Config{})
	require.NoError(t, err)
	require.Equal(t, "x@example.com", clean[0].MessageID, "a clean id is kept")
}

// A Message-ID longer than a store's index entry may hold is replaced by a
// synthetic one derived from its bytes (PostgreSQL refused the order: a
// valid order mail was retried and dead-lettered as a store failure): it
// stays the same for the same mail, differs for two ids that differ past
// any cut, and the audit says so. An id of MaxMessageIDBytes is kept.
func TestLongMessageIDIsReplacedStablyAndDistinctly(t *testing.T) {
	t.Parallel()
	mail := func(id string) []byte {
		return []byte("From: a@example.com\r\nMessage-ID: <" + id + ">\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n")
	}
	long := strings.Repeat("x", 3000) + "@example.com"
	a1, _, err := domain.BuildOrders(mail(long+"a"), domain.Config{})
	require.NoError(t, err)
	a2, _, err := domain.BuildOrders(mail(long+"a"), domain.Config{})
	require.NoError(t, err)
	b, _, err := domain.BuildOrders(mail(long+"b"), domain.Config{})
	require.NoError(t, err)
	require.LessOrEqual(t, len(a1[0].MessageID), domain.MaxMessageIDBytes)
	require.True(t, strings.HasPrefix(a1[0].MessageID, "msgid-sha256-"), a1[0].MessageID)
	require.Equal(t, a1[0].ID, a2[0].ID)
	require.NotEqual(t, a1[0].ID, b[0].ID)
	require.Contains(t, strings.Join(a1[0].Audit, "\n"), "bytes long, more than 998")
	edge := strings.Repeat("y", domain.MaxMessageIDBytes-len("@example.com")) + "@example.com"
	kept, _, err := domain.BuildOrders(mail(edge), domain.Config{})
	require.NoError(t, err)
	require.Equal(t, edge, kept[0].MessageID)
}

// Unicode's bidirectional embeddings, overrides and isolates reorder
// what a page or a log shows: an attachment "order<U+202E>vsc.exe" shows
// as "orderexe.csv", a sender's address as another. They are replaced in
// every text of a mail (and noted), as control characters are; a
// Message-ID holding one gets a synthetic id.
func TestBidiOverridesAreReplaced(t *testing.T) {
	t.Parallel()
	raw := "From: \"Evil \u202eRLO\" <ab\u202ec@example.com>\r\nSubject: x\u2066y\r\nMessage-ID: <a\u202eb@example.com>\r\n" +
		"Content-Type: text/csv; name=\"order\u202evsc.exe\"\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n"
	orders, m, err := domain.BuildOrders([]byte(raw), domain.Config{})
	require.NoError(t, err)
	require.Len(t, orders, 1)
	require.Empty(t, orderTextProblems(orders[0]))
	require.True(t, strings.HasPrefix(m.From, "sender-sha256-"), m.From)
	require.Equal(t, "Evil \ufffdRLO", m.FromName)
	require.Equal(t, "x\ufffdy", m.Subject)
	require.Equal(t, "order\ufffdvsc.exe", orders[0].AttachmentName)
	require.True(t, strings.HasPrefix(m.MessageID, "msgid-sha256-"), m.MessageID)
	audit := strings.Join(orders[0].Audit, "\n")
	for _, want := range []string{"sender address \"ab\ufffdc@example.com\" is not readable text", "sender name held", "subject held", "file name"} {
		require.Contains(t, audit, want)
	}
	d, err := domain.ParseJSON("o.json", []byte(`{"customer":"C\u202e1","lines":[{"sku":"A-1","qty":1,"price":1}]}`), 10)
	require.NoError(t, err)
	require.Equal(t, "C\ufffd1", d.CustomerRef)
}

// A sender's From header with raw 8-bit bytes (a Latin-1 mailer's
// "Müller") or an RFC 2047 word in a charset nobody knows is text that
// is not UTF-8, like such a Subject: the mail still yields its order,
// with the bytes replaced and noted, instead of being rejected as a mail
// without a readable sender (its address was readable all along).
func TestFromWithBytesThatAreNotTextKeepsTheOrder(t *testing.T) {
	t.Parallel()
	body := "Message-ID: <latin1@example.com>\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n"
	for _, c := range []struct{ from, addr, name string }{
		{"M\xfcller <buyer@example.com>", "buyer@example.com", "M\ufffdller"},
		{"\"M\xfcller, Hans\" <buyer@example.com>", "buyer@example.com", "M\ufffdller, Hans"},
		{"=?x-unknown?q?M=FCller?= <buyer@example.com>", "buyer@example.com", "M\ufffdller"},
		{"b\xfcyer@example.com", "sender-sha256-", ""}, // see TestUnreadableSenderAddressIsNoOtherCustomer
	} {
		orders, m, err := domain.BuildOrders([]byte("From: "+c.from+"\r\n"+body), domain.Config{})
		require.NoError(t, err, "From: %q", c.from)
		require.Len(t, orders, 1)
		require.Empty(t, orderTextProblems(orders[0]), "From: %q", c.from)
		if strings.HasSuffix(c.addr, "-") {
			require.True(t, strings.HasPrefix(m.From, c.addr), "From: %q gave %q", c.from, m.From)
		} else {
			require.Equal(t, c.addr, m.From, "From: %q", c.from)
		}
		require.Equal(t, c.name, m.FromName, "From: %q", c.from)
		require.Contains(t, strings.Join(orders[0].Audit, "\n"), "sender (From)", "From: %q", c.from)
	}
	for _, from := range []string{"M\xfcller", "=?x-unknown?q?M=FCller?="} { // no address: still no sender
		_, _, err := domain.BuildOrders([]byte("From: "+from+"\r\n"+body), domain.Config{})
		require.ErrorIs(t, err, domain.ErrRejected, "From: %q", from)
	}
}

// A sender's address that is not readable text is not kept with its bad
// bytes replaced by U+FFFD: "j\xe9rome@", "j\xe8rome@" and a real
// "j\ufffdrome@" all read "j\ufffdrome@", so one sender's orders were
// filed under, and confirmed to, an address that another sender's mails
// gave too. Each mail still yields its order, with a synthetic address
// derived from its From header (the same for the same header, under
// .invalid, so it matches no real customer) and a note quoting what was
// readable.
func TestUnreadableSenderAddressIsNoOtherCustomer(t *testing.T) {
	t.Parallel()
	body := "Message-ID: <x@example.com>\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n"
	seen := map[string]string{}
	for _, from := range []string{
		"j\xe9rome@example.com",
		"j\xe8rome@example.com",
		"J\xe9rome <j\xe9rome@example.com>",
		"j\ufffdrome@example.com",
	} {
		orders, m, err := domain.BuildOrders([]byte("From: "+from+"\r\n"+body), domain.Config{})
		require.NoError(t, err, "From: %q", from)
		require.Len(t, orders, 1, "From: %q", from)
		o := orders[0]
		require.NotContains(t, o.Customer, "\ufffd", "From: %q", from)
		require.True(t, strings.HasPrefix(o.Customer, "sender-sha256-") && strings.HasSuffix(o.Customer, "@mailorder.invalid"), "From: %q gave %q", from, o.Customer)
		require.Equal(t, o.Customer, m.From)
		require.Equal(t, o.Customer, o.Confirmation().To)
		require.Contains(t, strings.Join(o.Audit, "\n"), "sender address \"j\ufffdrome@example.com\" is not readable text; using "+o.Customer)
		require.Empty(t, orderTextProblems(o))
		prev, dup := seen[o.Customer]
		require.False(t, dup, "From: %q and %q gave the same customer %q", from, prev, o.Customer)
		seen[o.Customer] = from
		again, _, err := domain.BuildOrders([]byte("From: "+from+"\r\n"+body), domain.Config{})
		require.NoError(t, err)
		require.Equal(t, o.Customer, again[0].Customer, "the same mail, the same customer")
	}
}
