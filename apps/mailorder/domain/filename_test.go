package domain_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
)

// An order attachment sent as application/octet-stream is known by its
// file name's extension, so its name must be read however a mailer wrote
// it: RFC 2231 in a charset other than UTF-8 (ISO-8859-1, whole or in
// continuations), raw 8-bit bytes outside quotes, an RFC 2047 word in an
// unknown charset, the parameter given twice. Each was read as no name
// (or, for the continuations, as the name's tail), and the mail was
// rejected as having no order attachment.
func TestFileNamesOfEveryWritingAreRead(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ header, name string }{
		{"Content-Disposition: attachment; filename*=iso-8859-1''Bestellung%E4.csv", "Bestellungä.csv"},
		{"Content-Disposition: attachment; filename*=ISO-8859-1'de'Bestellung%20M%E4rz.csv", "Bestellung März.csv"},
		{"Content-Disposition: attachment; filename*0*=iso-8859-1''Bestell; filename*1*=ung%E4; filename*2=.csv", "Bestellungä.csv"},
		{"Content-Disposition: attachment;\r\n filename*0*=windows-1252''Bestell;\r\n filename*1=\"ung 1.csv\"", "Bestellung 1.csv"},
		{"Content-Disposition: attachment; filename=Bestellung\xe4.csv", "Bestellung\ufffd.csv"},
		{"Content-Disposition: attachment; filename=\"=?x-unknown?q?Bestellung=E4.csv?=\"", "Bestellung\ufffd.csv"},
		{"Content-Disposition: attachment; filename=o.csv; filename=o.csv", "o.csv"},
		{"Content-Disposition: attachment\r\nContent-Type: application/octet-stream; name*=iso-8859-1''%C4.csv", "Ä.csv"},
		{"Content-Disposition: attachment; filename*=x-unknown''Bestellung%E4.csv", "Bestellung\ufffd.csv"},
		// Written as the standard says: read as before.
		{"Content-Disposition: attachment; filename*=UTF-8''Bestellung%20M%C3%A4rz.csv", "Bestellung März.csv"},
		{"Content-Disposition: attachment; filename=\"=?iso-8859-1?q?Bestellung=E4.csv?=\"", "Bestellungä.csv"},
		{"Content-Disposition: attachment; filename=\"a \\\"b\\\".csv\"", "a \"b\".csv"},
	} {
		raw := "From: a@example.com\r\nMessage-ID: <n@example.com>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
		if !strings.Contains(c.header, "Content-Type:") {
			raw += "Content-Type: application/octet-stream\r\n"
		}
		raw += c.header + "\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n--XX--\r\n"
		orders, _, err := domain.BuildOrders([]byte(raw), domain.Config{})
		require.NoError(t, err, "%q", c.header)
		require.Len(t, orders, 1)
		require.Equal(t, c.name, orders[0].AttachmentName, "%q", c.header)
		require.Empty(t, orderTextProblems(orders[0]), "%q", c.header)
	}
}

// A Content-Type that the standard reader gives up on for one parameter
// (a raw 8-bit byte in an unquoted name, a value that is no token) still
// declares its charset and boundary: a Latin-1 CSV so declared was
// rejected as "not valid UTF-8 text (declare the charset)", a multipart
// as "without boundary".
func TestContentTypeParametersBesideABrokenOneAreRead(t *testing.T) {
	t.Parallel()
	csv := "sku,qty,price,Beschreibung\r\nAB-1,1,1,K\xe4se\r\n"
	for _, c := range []struct{ outer, part, name string }{
		{"multipart/mixed; boundary=XX", "Content-Type: text/csv; charset=iso-8859-1; name=Bestellung\xe4.csv", "Bestellung\ufffd.csv"},
		{"multipart/mixed; boundary=XX", "Content-Type: text/csv; charset=iso-8859-1; x=[1]\r\nContent-Disposition: attachment; filename=a.csv", "a.csv"},
		{"multipart/mixed; boundary=\"XX\"; x=[1]", "Content-Type: text/csv; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=a.csv", "a.csv"},
	} {
		raw := "From: a@example.com\r\nMessage-ID: <c@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: " + c.outer + "\r\n\r\n" +
			"--XX\r\n" + c.part + "\r\n\r\n" + csv + "--XX--\r\n"
		orders, _, err := domain.BuildOrders([]byte(raw), domain.Config{})
		require.NoError(t, err, "%q %q", c.outer, c.part)
		require.Len(t, orders, 1)
		require.Equal(t, c.name, orders[0].AttachmentName)
		require.Equal(t, "AB-1", orders[0].Lines[0].SKU)
	}
}
