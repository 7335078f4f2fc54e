package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ParseJSON reads an order in JSON: either an object
// {"lines": [...], "customer": "...", "reference": "..."} or a bare array of
// lines. A line is an object with sku, qty and unit_price (same aliases as
// the CSV columns, keys compared case-insensitively); numbers may be JSON
// numbers or strings, and are never read through a float. A key given
// twice in one object (the same key, or two of its aliases) is rejected.
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
		if f, err := keyGivenTwice(data, orderKey); err != nil {
			return d, reject(name, 0, "", "malformed JSON: "+jsonErr(err))
		} else if f != "" {
			return d, reject(name, 0, f, "given twice")
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) { // the same notes and reason every run
			v := obj[k]
			switch orderKey(k) {
			case "lines":
				if err := json.Unmarshal(v, &rawLines); err != nil {
					return d, reject(name, 0, "lines", "must be an array of line objects")
				}
			case "customer":
				s, err := jsonScalar(v)
				if err != nil {
					return d, reject(name, 0, "customer", "must be a string or number")
				}
				d.CustomerRef = s
				cleanField(fmt.Sprintf("attachment %q: customer", name), &d.CustomerRef, &d.Notes)
			case "reference":
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
		if f, err := keyGivenTwice(raw, lineKey); err != nil {
			return d, reject(name, n, "", "line is not an object")
		} else if f != "" {
			return d, reject(name, n, f, "given twice")
		}
		fields := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			v := obj[k]
			f, ok := columnAliases[normaliseKey(k)]
			if !ok {
				continue
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

// orderKey returns the field an order object's key names ("lines",
// "customer", "reference"), "" for a key that is not read.
func orderKey(k string) string {
	switch normaliseKey(k) {
	case "lines", "items", "positions", "order lines":
		return "lines"
	case "customer", "customer id", "customer no", "customer number":
		return "customer"
	case "reference", "order reference", "ref", "po", "po number":
		return "reference"
	}
	return ""
}

// lineKey returns the field a line object's key names, "" for a key that
// is not read.
func lineKey(k string) string { return columnAliases[normaliseKey(k)] }

// keyGivenTwice returns the first field that two keys of the JSON object
// data name (the same key twice, or two of its aliases), "" when none
// does; field maps a key to its field ("" for a key that is not read).
// A map decoded from the object keeps one value of such keys, silently.
func keyGivenTwice(data []byte, field func(string) string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the object's '{'
		return "", err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		k, _ := tok.(string)
		if f := field(k); f != "" {
			if seen[f] {
				return f, nil
			}
			seen[f] = true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", err
		}
	}
	return "", nil
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
