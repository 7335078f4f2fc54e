package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Line is one validated order line.
type Line struct {
	// No is the 1-based position of the line in the order.
	No int `json:"no"`
	// SourceLine is where the line came from: the CSV line number, or the
	// index in the JSON lines array plus one.
	SourceLine int `json:"source_line"`
	// SKU is the article number, trimmed and upper-cased.
	SKU string `json:"sku"`
	// Quantity is the number of pieces, at least 1.
	Quantity int64 `json:"quantity"`
	// UnitPrice is the price of one piece.
	UnitPrice Money `json:"unit_price"`
	// Total is Quantity × UnitPrice.
	Total Money `json:"total"`
}

// Order is one order: the content of one order attachment of one mail.
type Order struct {
	// ID is deterministic: OrderID(MessageID, AttachmentHash).
	ID string `json:"id"`
	// Customer is the sender's mail address (lower-cased).
	Customer string `json:"customer"`
	// CustomerName is the sender's display name, if any.
	CustomerName string `json:"customer_name,omitempty"`
	// CustomerRef is the customer number given inside the attachment (JSON
	// "customer"), if any.
	CustomerRef string `json:"customer_ref,omitempty"`
	// Reference is the customer's own order reference (JSON "reference"), if
	// any.
	Reference string `json:"reference,omitempty"`
	// Lines are the order lines, in attachment order.
	Lines []Line `json:"lines"`
	// Total is the sum of the line totals.
	Total Money `json:"total"`
	// MessageID is the Message-ID of the mail, without angle brackets.
	MessageID string `json:"message_id"`
	// Subject is the decoded subject of the mail.
	Subject string `json:"subject,omitempty"`
	// AttachmentName is the file name of the attachment.
	AttachmentName string `json:"attachment_name"`
	// AttachmentHash is the hex SHA-256 of the attachment's decoded bytes.
	AttachmentHash string `json:"attachment_hash"`
	// Audit holds notes about how the mail was understood (ignored
	// attachments, synthetic message id, detected CSV separator, ...).
	Audit []string `json:"audit,omitempty"`
	// MailDate is the Date header of the mail (zero if missing or invalid).
	MailDate time.Time `json:"mail_date"`
	// ReceivedAt is when the pipeline processed the mail.
	ReceivedAt time.Time `json:"received_at"`
}

// OrderID derives the order id from the mail's message id and the
// attachment's hash: "ord_" and 24 hex digits of a SHA-256 over both.
func OrderID(messageID, attachmentHash string) string {
	h := sha256.New()
	h.Write([]byte(messageID))
	h.Write([]byte{0})
	h.Write([]byte(attachmentHash))
	return "ord_" + hex.EncodeToString(h.Sum(nil))[:24]
}

// Confirmation is the message that confirms a stored order to its customer.
// Stores write it to their outbox in the same transaction as the order.
type Confirmation struct {
	// OrderID is the order confirmed.
	OrderID string `json:"order_id"`
	// To is the recipient address (the order's customer).
	To string `json:"to"`
	// Subject is the subject line of the confirmation mail.
	Subject string `json:"subject"`
	// Body is the plain text of the confirmation mail.
	Body string `json:"body"`
}

// Confirmation builds the confirmation of o: a plain text summary of its
// lines and total. It is deterministic for a given order.
func (o Order) Confirmation() Confirmation {
	var b strings.Builder
	fmt.Fprintf(&b, "Thank you for your order.\n\nOrder: %s\n", o.ID)
	if o.Reference != "" {
		fmt.Fprintf(&b, "Your reference: %s\n", o.Reference)
	}
	fmt.Fprintf(&b, "From your mail: %s (attachment %s)\n\n", o.MessageID, o.AttachmentName)
	for _, l := range o.Lines {
		fmt.Fprintf(&b, "%4d  %-32s %8d x %12s = %14s\n", l.No, l.SKU, l.Quantity, l.UnitPrice, l.Total)
	}
	fmt.Fprintf(&b, "\nTotal: %s\n", o.Total)
	subject := "Order confirmation " + o.ID
	if o.Reference != "" {
		subject += " (" + o.Reference + ")"
	}
	return Confirmation{OrderID: o.ID, To: o.Customer, Subject: subject, Body: b.String()}
}
