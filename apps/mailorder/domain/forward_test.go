package domain_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
)

// forwardedOrder is an order mail as it is forwarded: its CSV order in
// a multipart of its own.
const forwardedOrder = "From: shop@example.com\r\nSubject: Order\r\nMessage-ID: <inner@example.com>\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=IN\r\n\r\n" +
	"--IN\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
	"--IN\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=o.csv\r\n\r\nsku,qty,price\r\nAB-1,2,1.50\r\n" +
	"--IN--\r\n"

// An order mail forwarded as an attachment (what "forward as attachment"
// of every mail program writes: message/rfc822 with Content-Disposition
// attachment and a name) is walked like one forwarded inline, as the
// package doc says of attached mails: it was taken for an attachment of
// another format, and the mail rejected as having no order attachment.
func TestOrderMailForwardedAsAttachmentYieldsItsOrder(t *testing.T) {
	t.Parallel()
	for _, part := range []string{
		"Content-Type: message/rfc822\r\n",
		"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n",
		"Content-Type: message/rfc822; name=\"Order.eml\"\r\nContent-Disposition: attachment; filename=\"Order.eml\"\r\n",
		"Content-Type: message/rfc822; name=\"Order.eml\"\r\nContent-Disposition: attachment; filename=\"Order.eml\"\r\nContent-Transfer-Encoding: base64\r\n",
	} {
		inner := forwardedOrder
		if strings.Contains(part, "base64") {
			inner = b64Lines(inner)
		}
		raw := "From: sales@example.com\r\nMessage-ID: <outer@example.com>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nFYI\r\n" +
			"--XX\r\n" + part + "\r\n" + inner + "\r\n--XX--\r\n"
		orders, m, err := domain.BuildOrders([]byte(raw), domain.Config{})
		require.NoError(t, err, "%q", part)
		require.Len(t, orders, 1, "%q", part)
		o := orders[0]
		require.Equal(t, "o.csv", o.AttachmentName)
		require.Equal(t, "outer@example.com", o.MessageID)
		require.Equal(t, "sales@example.com", o.Customer)
		require.Equal(t, domain.Money(300), o.Total)
		require.Equal(t, domain.OrderID("outer@example.com", o.AttachmentHash), o.ID)
		require.Len(t, m.Attachments, 1, "the forwarded mail is walked, not kept as an attachment")
	}
}

// b64Lines is s in base64, in lines of 76 characters.
func b64Lines(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	return b.String()
}
