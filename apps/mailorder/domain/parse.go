package domain

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

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
func ParseAttachment(a Attachment, cfg Config) (Draft, error) {
	cfg = cfg.WithDefaults()
	name := a.Name
	if name == "" {
		name = "(unnamed " + a.ContentType + ")"
	}
	data := a.Data
	if cs := a.Charset; cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" {
		r, err := charset.Reader(cs, bytes.NewReader(data))
		if err != nil {
			return Draft{}, reject(name, 0, "", fmt.Sprintf("unknown charset %q", cs))
		}
		conv, err := io.ReadAll(io.LimitReader(r, 4*cfg.MaxAttachmentBytes+4))
		if err != nil {
			return Draft{}, reject(name, 0, "", fmt.Sprintf("cannot convert charset %q: %v", cs, err))
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

// ParseCSV reads an order in CSV. The first non-empty row is the header; it
// must name the columns sku, qty and unit price (aliases: see the package
// documentation). The separator is ';', ',' or tab, whichever occurs most in
// the header row. Empty rows are skipped; columns not recognised are
// ignored. More than maxLines data rows is an error (0 means no limit).
func ParseCSV(name string, data []byte, maxLines int) (Draft, error) {
	d := Draft{Attachment: name}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if !utf8.Valid(data) {
		return d, reject(name, 0, "", "CSV is not valid UTF-8 text (declare the charset)")
	}
	sep := detectSeparator(data)
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = sep
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = true

	col := map[string]int{}
	var header []string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return d, reject(name, pe.Line, "", "malformed CSV: "+pe.Err.Error())
			}
			return d, reject(name, 0, "", "malformed CSV: "+err.Error())
		}
		line, _ := r.FieldPos(0) // valid only after a successful Read
		if blankRecord(rec) {
			continue
		}
		if header == nil {
			header = append([]string(nil), rec...)
			var ignored []string
			for i, h := range header {
				f, ok := columnAliases[normaliseKey(h)]
				if !ok {
					if strings.TrimSpace(h) != "" {
						ignored = append(ignored, strings.TrimSpace(h))
					}
					continue
				}
				if _, dup := col[f]; dup {
					return d, reject(name, line, f, fmt.Sprintf("column %q given twice in the header", f))
				}
				col[f] = i
			}
			for _, f := range []string{FieldSKU, FieldQuantity, FieldUnitPrice} {
				if _, ok := col[f]; !ok {
					return d, reject(name, line, f, fmt.Sprintf("header has no %s column (found %s)", f, quoteList(header)))
				}
			}
			d.Notes = append(d.Notes, fmt.Sprintf("attachment %q read as CSV with separator %q", name, string(sep)))
			if len(ignored) > 0 {
				d.Notes = append(d.Notes, fmt.Sprintf("attachment %q: ignored columns %s", name, quoteList(ignored)))
			}
			continue
		}
		if maxLines > 0 && len(d.Lines) >= maxLines {
			return d, reject(name, line, "", fmt.Sprintf("more than %d order lines", maxLines))
		}
		get := func(f string) (string, bool) {
			i := col[f]
			if i >= len(rec) {
				return "", false
			}
			return rec[i], true
		}
		if len(rec) > len(header) && !blankRecord(rec[len(header):]) {
			return d, reject(name, line, "", fmt.Sprintf("row has %d fields but the header has %d (a decimal comma in a ','-separated file must be quoted)", len(rec), len(header)))
		}
		dl := DraftLine{SourceLine: line}
		sku, ok := get(FieldSKU)
		if !ok {
			return d, reject(name, line, FieldSKU, fmt.Sprintf("row has %d fields, missing this column", len(rec)))
		}
		dl.SKU = sku
		qty, ok := get(FieldQuantity)
		if !ok {
			return d, reject(name, line, FieldQuantity, fmt.Sprintf("row has %d fields, missing this column", len(rec)))
		}
		q, err := parseQuantity(qty)
		if err != nil {
			return d, reject(name, line, FieldQuantity, "invalid quantity: "+err.Error())
		}
		dl.Quantity = q
		price, ok := get(FieldUnitPrice)
		if !ok {
			return d, reject(name, line, FieldUnitPrice, fmt.Sprintf("row has %d fields, missing this column", len(rec)))
		}
		p, err := ParseMoney(price)
		if err != nil {
			return d, reject(name, line, FieldUnitPrice, fmt.Sprintf("invalid price %q: %v", clip(price), err))
		}
		dl.UnitPrice = p
		d.Lines = append(d.Lines, dl)
	}
	if header == nil {
		return d, reject(name, 0, "", "CSV is empty (no header row, no order lines)")
	}
	return d, nil
}

// detectSeparator counts ';', ',' and tab outside quotes in the first
// non-empty line and returns the most frequent (',' on a tie or none).
func detectSeparator(data []byte) rune {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		counts := map[byte]int{}
		inQuote := false
		for _, c := range line {
			switch {
			case c == '"':
				inQuote = !inQuote
			case !inQuote && (c == ';' || c == ',' || c == '\t'):
				counts[c]++
			}
		}
		best, bestN := byte(','), counts[',']
		for _, c := range []byte{';', '\t'} {
			if counts[c] > bestN {
				best, bestN = c, counts[c]
			}
		}
		return rune(best)
	}
	return ','
}

func blankRecord(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func quoteList(xs []string) string {
	q := make([]string, 0, len(xs))
	for i, x := range xs {
		if i == 8 {
			q = append(q, "...")
			break
		}
		q = append(q, fmt.Sprintf("%q", clip(x)))
	}
	return strings.Join(q, ", ")
}

// clip shortens s for a reason text.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ParseJSON reads an order in JSON: either an object
// {"lines": [...], "customer": "...", "reference": "..."} or a bare array of
// lines. A line is an object with sku, qty and unit_price (same aliases as
// the CSV columns, keys compared case-insensitively); numbers may be JSON
// numbers or strings, and are never read through a float.
func ParseJSON(name string, data []byte, maxLines int) (Draft, error) {
	d := Draft{Attachment: name}
	data = bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff")))
	if len(data) == 0 {
		return d, reject(name, 0, "", "JSON is empty")
	}
	var rawLines []json.RawMessage
	switch data[0] {
	case '[':
		if err := json.Unmarshal(data, &rawLines); err != nil {
			return d, reject(name, 0, "", "malformed JSON: "+jsonErr(err))
		}
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return d, reject(name, 0, "", "malformed JSON: "+jsonErr(err))
		}
		for k, v := range obj {
			switch normaliseKey(k) {
			case "lines", "items", "positions", "order lines":
				if err := json.Unmarshal(v, &rawLines); err != nil {
					return d, reject(name, 0, "lines", "must be an array of line objects")
				}
			case "customer", "customer id", "customer no", "customer number":
				s, err := jsonScalar(v)
				if err != nil {
					return d, reject(name, 0, "customer", "must be a string or number")
				}
				d.CustomerRef = s
				cleanField(fmt.Sprintf("attachment %q: customer", name), &d.CustomerRef, &d.Notes)
			case "reference", "order reference", "ref", "po", "po number":
				s, err := jsonScalar(v)
				if err != nil {
					return d, reject(name, 0, "reference", "must be a string or number")
				}
				d.Reference = s
				cleanField(fmt.Sprintf("attachment %q: reference", name), &d.Reference, &d.Notes)
			}
		}
		if rawLines == nil {
			return d, reject(name, 0, "lines", "JSON object has no \"lines\" array")
		}
	default:
		return d, reject(name, 0, "", "JSON must be an object with \"lines\" or an array of lines")
	}
	d.Notes = append(d.Notes, fmt.Sprintf("attachment %q read as JSON", name))
	if maxLines > 0 && len(rawLines) > maxLines {
		return d, reject(name, maxLines+1, "", fmt.Sprintf("more than %d order lines", maxLines))
	}
	for i, raw := range rawLines {
		n := i + 1
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return d, reject(name, n, "", "line is not an object")
		}
		fields := map[string]string{}
		for k, v := range obj {
			f, ok := columnAliases[normaliseKey(k)]
			if !ok {
				continue
			}
			if _, dup := fields[f]; dup {
				return d, reject(name, n, f, "given twice")
			}
			s, err := jsonScalar(v)
			if err != nil {
				return d, reject(name, n, f, "must be a string or number")
			}
			fields[f] = s
		}
		dl := DraftLine{SourceLine: n}
		for _, f := range []string{FieldSKU, FieldQuantity, FieldUnitPrice} {
			if _, ok := fields[f]; !ok {
				return d, reject(name, n, f, "missing")
			}
		}
		dl.SKU = fields[FieldSKU]
		q, err := parseQuantity(fields[FieldQuantity])
		if err != nil {
			return d, reject(name, n, FieldQuantity, "invalid quantity: "+err.Error())
		}
		dl.Quantity = q
		p, err := ParseMoney(fields[FieldUnitPrice])
		if err != nil {
			return d, reject(name, n, FieldUnitPrice, fmt.Sprintf("invalid price %q: %v", clip(fields[FieldUnitPrice]), err))
		}
		dl.UnitPrice = p
		d.Lines = append(d.Lines, dl)
	}
	return d, nil
}

// jsonScalar returns a JSON string's value or a JSON number's literal text.
func jsonScalar(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", errors.New("empty")
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	}
	return "", errors.New("not a string or number")
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("unexpected %s at byte %d", te.Value, te.Offset)
	}
	return err.Error()
}
