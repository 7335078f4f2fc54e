package domain

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/charset"
)

// Draft is a parsed but not yet validated order attachment.
type Draft struct {
	// Attachment is the file name the draft was read from.
	Attachment string
	// Lines are the parsed lines, SKUs as written.
	Lines []DraftLine
	// CustomerRef is the customer number given in the attachment, if any.
	CustomerRef string
	// Reference is the customer's order reference, if any.
	Reference string
	// Notes say how the attachment was read (separator, ignored columns).
	Notes []string
}

// DraftLine is one parsed line: numbers are parsed, nothing is checked yet.
type DraftLine struct {
	// SourceLine is the CSV line number or the JSON array index plus one.
	SourceLine int
	// SKU is the article number as written.
	SKU string
	// Quantity is the parsed quantity (may be zero or negative here).
	Quantity int64
	// UnitPrice is the parsed unit price (may be negative here).
	UnitPrice Money
}

// Field names used in reasons.
const (
	FieldSKU       = "sku"
	FieldQuantity  = "qty"
	FieldUnitPrice = "unit_price"
)

// columnAliases maps normalised column names and JSON keys to fields.
var columnAliases = map[string]string{
	"sku": FieldSKU, "article": FieldSKU, "article no": FieldSKU, "article number": FieldSKU,
	"articleno": FieldSKU, "item": FieldSKU, "item no": FieldSKU, "item number": FieldSKU,
	"product code": FieldSKU, "productcode": FieldSKU, "product": FieldSKU, "part number": FieldSKU,
	"artikel": FieldSKU, "artikelnummer": FieldSKU, "artikel nr": FieldSKU, "art nr": FieldSKU,

	"qty": FieldQuantity, "quantity": FieldQuantity, "menge": FieldQuantity, "amount": FieldQuantity,
	"anzahl": FieldQuantity, "pieces": FieldQuantity, "pcs": FieldQuantity, "count": FieldQuantity,

	"price": FieldUnitPrice, "unit price": FieldUnitPrice, "unitprice": FieldUnitPrice,
	"preis": FieldUnitPrice, "einzelpreis": FieldUnitPrice, "unit cost": FieldUnitPrice,
	"price per unit": FieldUnitPrice,
}

// normaliseKey lower-cases, turns '_', '-' and '.' into spaces and collapses
// white space: "Unit_Price" and "unit price" are the same key.
func normaliseKey(s string) string {
	s = strings.TrimPrefix(s, "\ufeff")
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.':
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// ParseAttachment is the parse step for one order attachment: it converts the
// charset to UTF-8 when one is declared and reads the data as CSV or JSON.
// Data over cfg.MaxAttachmentBytes is rejected, as ParseMail rejects it.
func ParseAttachment(a Attachment, cfg Config) (Draft, error) {
	cfg = cfg.WithDefaults()
	name := a.Name
	if name == "" {
		name = "(unnamed " + a.ContentType + ")"
	}
	data := a.Data
	if int64(len(data)) > cfg.MaxAttachmentBytes {
		// ParseMail refuses it; a caller that made the Attachment itself
		// gets the same answer, not an order cut short below.
		return Draft{}, reject(name, 0, "", fmt.Sprintf("attachment is larger than the limit of %d bytes", cfg.MaxAttachmentBytes))
	}
	if cs := a.Charset; cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" {
		r, err := charset.Reader(cs, bytes.NewReader(data))
		if err != nil {
			return Draft{}, reject(name, 0, "", fmt.Sprintf("unknown charset %q", cs))
		}
		// A character takes at most 4 bytes in UTF-8, so the text of at
		// most MaxAttachmentBytes fits; should it not, the attachment is
		// refused rather than read short (lines would be lost).
		limit := 4*cfg.MaxAttachmentBytes + 4
		conv, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return Draft{}, reject(name, 0, "", fmt.Sprintf("cannot convert charset %q: %v", cs, err))
		}
		if int64(len(conv)) > limit {
			return Draft{}, reject(name, 0, "", fmt.Sprintf("attachment in charset %q converts to more than %d bytes", cs, limit))
		}
		data = conv
	}
	switch a.Kind {
	case KindCSV:
		return ParseCSV(name, data, cfg.MaxLinesPerOrder)
	case KindJSON:
		return ParseJSON(name, data, cfg.MaxLinesPerOrder)
	default:
		return Draft{}, reject(name, 0, "", "not an order attachment")
	}
}
