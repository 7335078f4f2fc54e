package domain

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Money is an amount in cents (hundredths of the currency unit). It is an
// integer so that totals are exact; no float is ever involved.
type Money int64

// MaxUnitPrice is the largest accepted unit price: 10 000 000 000.00
// (10^12 cents). With Config.MaxQuantity at most 10^6 a line total stays far
// from overflowing int64.
const MaxUnitPrice Money = 1_000_000_000_000

// String formats m with a dot and two decimals: "12.50", "-0.05".
func (m Money) String() string {
	sign := ""
	u := uint64(m)
	if m < 0 {
		sign = "-"
		u = uint64(-m) // -MinInt64 wraps to itself, read as uint64 it is right
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

var (
	errMoneyEmpty    = errors.New("empty amount")
	errMoneySyntax   = errors.New("not a number")
	errMoneyMixed    = errors.New("both comma and dot (thousands separators are not supported)")
	errMoneyDecimals = errors.New("more than two decimal places")
	errMoneyRange    = errors.New("amount too large")
)

// ParseMoney parses a decimal amount into cents. It accepts an optional sign,
// digits, and at most one decimal separator, which may be a dot or a comma,
// followed by one or two digits: "12", "12.5", "12,50", "-3.00". Surrounding
// white space is ignored. Thousands separators, exponents and more than two
// decimals are errors, so nothing is ever rounded.
func ParseMoney(s string) (Money, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errMoneyEmpty
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	hasComma, hasDot := strings.Contains(s, ","), strings.Contains(s, ".")
	if hasComma && hasDot {
		return 0, errMoneyMixed
	}
	intPart, frac := s, ""
	if i := strings.IndexAny(s, ".,"); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
	}
	if intPart == "" && frac == "" {
		return 0, errMoneySyntax
	}
	if !allDigits(intPart) || !allDigits(frac) || (intPart == "" && frac == "") {
		return 0, errMoneySyntax
	}
	if len(frac) > 2 {
		return 0, errMoneyDecimals
	}
	if strings.IndexAny(s, ".,") >= 0 && frac == "" {
		return 0, errMoneySyntax // "12." is not a number
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 15 {
		return 0, errMoneyRange
	}
	var units int64
	if intPart != "" {
		v, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil {
			return 0, errMoneySyntax
		}
		units = v
	}
	var cents int64
	switch len(frac) {
	case 1:
		cents = int64(frac[0]-'0') * 10
	case 2:
		cents = int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	v := units*100 + cents
	if neg {
		v = -v
	}
	return Money(v), nil
}

// mulMoney returns price*qty, or false on overflow.
func mulMoney(price Money, qty int64) (Money, bool) {
	if price == 0 || qty == 0 {
		return 0, true
	}
	p := int64(price)
	if p > 0 && qty > 0 && p > math.MaxInt64/qty {
		return 0, false
	}
	if p < 0 || qty < 0 {
		return 0, false // validated before: never negative
	}
	return Money(p * qty), true
}

// addMoney returns a+b, or false on overflow.
func addMoney(a, b Money) (Money, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseQuantity parses a whole, possibly signed, number. Decimals are refused
// (quantities are pieces); "3.0" is refused too, so nothing is silently
// truncated.
func parseQuantity(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty quantity")
	}
	body := s
	if body[0] == '-' || body[0] == '+' {
		body = body[1:]
	}
	if body == "" || !allDigits(body) {
		if strings.ContainsAny(body, ".,") {
			return 0, fmt.Errorf("%q is not a whole number", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return v, nil
}
