package domain

import (
	"fmt"
	"regexp"
	"strings"
)

// skuPattern is what a SKU must look like after trimming and upper-casing.
var skuPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,31}$`)

// NormaliseSKU trims and upper-cases a SKU as written by a customer.
func NormaliseSKU(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

// Validate is the validate step: it checks a draft against the rules in the
// package documentation and returns its validated lines with their totals and
// the order total. A violation is a *RejectError naming attachment, line and
// field.
func Validate(d Draft, cfg Config) ([]Line, Money, error) {
	cfg = cfg.WithDefaults()
	name := d.Attachment
	if len(d.Lines) == 0 {
		return nil, 0, reject(name, 0, "", "no order lines")
	}
	if len(d.Lines) > cfg.MaxLinesPerOrder {
		return nil, 0, reject(name, 0, "", fmt.Sprintf("%d order lines, more than the limit of %d", len(d.Lines), cfg.MaxLinesPerOrder))
	}
	lines := make([]Line, 0, len(d.Lines))
	var total Money
	for i, dl := range d.Lines {
		sku := NormaliseSKU(dl.SKU)
		if sku == "" {
			return nil, 0, reject(name, dl.SourceLine, FieldSKU, "SKU is empty")
		}
		if !skuPattern.MatchString(sku) {
			return nil, 0, reject(name, dl.SourceLine, FieldSKU, fmt.Sprintf("invalid SKU %q: 3 to 32 letters, digits or dashes, not starting with a dash", clip(dl.SKU)))
		}
		if dl.Quantity <= 0 {
			return nil, 0, reject(name, dl.SourceLine, FieldQuantity, fmt.Sprintf("quantity must be a positive whole number, got %d", dl.Quantity))
		}
		if dl.Quantity > cfg.MaxQuantity {
			return nil, 0, reject(name, dl.SourceLine, FieldQuantity, fmt.Sprintf("quantity %d is more than the limit of %d", dl.Quantity, cfg.MaxQuantity))
		}
		if dl.UnitPrice < 0 {
			return nil, 0, reject(name, dl.SourceLine, FieldUnitPrice, fmt.Sprintf("unit price must not be negative, got %s", dl.UnitPrice))
		}
		if dl.UnitPrice > MaxUnitPrice {
			return nil, 0, reject(name, dl.SourceLine, FieldUnitPrice, fmt.Sprintf("unit price %s is more than the limit of %s", dl.UnitPrice, MaxUnitPrice))
		}
		lt, ok := mulMoney(dl.UnitPrice, dl.Quantity)
		if !ok {
			return nil, 0, reject(name, dl.SourceLine, "", "line total too large")
		}
		if total, ok = addMoney(total, lt); !ok {
			return nil, 0, reject(name, dl.SourceLine, "", "order total too large")
		}
		lines = append(lines, Line{No: i + 1, SourceLine: dl.SourceLine, SKU: sku, Quantity: dl.Quantity, UnitPrice: dl.UnitPrice, Total: lt})
	}
	return lines, total, nil
}
