package domain

import (
	"errors"
	"strconv"
	"strings"
)

// ErrRejected is matched (with errors.Is) by every permanent failure of a
// mail: its content can never be processed, so retrying is pointless. The
// runtime maps it to a permanent task failure.
var ErrRejected = errors.New("mailorder: mail rejected")

// ErrOrderNotFound is returned by stores when an order id is unknown.
var ErrOrderNotFound = errors.New("mailorder: order not found")

// RejectError is the permanent failure of a mail, with a human-readable
// reason. Attachment, Line and Field are set when the problem is located in an
// attachment (Line is 1-based: the CSV line, or the index in a JSON lines
// array plus one); they are also part of Reason.
type RejectError struct {
	// Reason says what is wrong, in words for the sender of the mail.
	Reason string
	// Attachment is the file name of the attachment at fault, if any.
	Attachment string
	// Line is the 1-based line at fault, 0 if none.
	Line int
	// Field is the column or key at fault ("sku", "qty", "unit_price"), if any.
	Field string
	// From, Subject and MessageID are the mail's, when its headers could
	// be read before the problem (a broken MIME structure, say) was found.
	From, Subject, MessageID string
}

// Error returns "mailorder: mail rejected: " followed by the reason.
func (e *RejectError) Error() string { return ErrRejected.Error() + ": " + e.Reason }

// Is reports whether target is ErrRejected, so errors.Is(err, ErrRejected)
// holds for every RejectError.
func (e *RejectError) Is(target error) bool { return target == ErrRejected }

// reject builds a RejectError whose reason is the message, prefixed with the
// attachment, line and field when they are given.
func reject(attachment string, line int, field, msg string) *RejectError {
	var b strings.Builder
	if attachment != "" {
		b.WriteString("attachment ")
		b.WriteString(strconv.Quote(attachment))
	}
	if line > 0 {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(line))
	}
	if field != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("field ")
		b.WriteString(strconv.Quote(field))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return &RejectError{Reason: b.String(), Attachment: attachment, Line: line, Field: field}
}
