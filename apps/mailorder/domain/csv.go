package domain

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

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
