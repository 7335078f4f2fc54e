// Package sample generates realistic order mails for the mailorder demo,
// tests and benchmarks: plain CSV, semicolon CSV with decimal commas,
// JSON, base64 and quoted-printable transfer encodings, nested
// multiparts, RFC 2231 file names, two orders in one mail, and a share of
// malformed mails (no attachment, a bad SKU, a negative quantity, broken
// JSON, an empty CSV) that the pipeline must reject. Mail(i) is
// deterministic: the same i always yields the same bytes.
package sample

import (
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
)

// Variant is the shape of one sample mail.
type Variant int

// The variants, in the order Mail cycles through them.
const (
	PlainCSV Variant = iota
	SemicolonCSV
	JSON
	Base64CSV
	NestedQPCSV
	RFC2231Name
	TwoOrders
	CSVAndLogo
	BadNoAttachment
	PlainCSV2
	SemicolonCSV2
	JSON2
	BadSKU
	Base64CSV2
	PlainCSV3
	BadQuantity
	JSON3
	BadJSON
	PlainCSV4
	BadEmptyCSV
	numVariants
)

// Valid reports whether mails of v are orders the pipeline accepts.
func (v Variant) Valid() bool {
	switch v {
	case BadNoAttachment, BadSKU, BadQuantity, BadJSON, BadEmptyCSV:
		return false
	}
	return true
}

// Orders is the number of orders a valid mail of v yields (0 for invalid).
func (v Variant) Orders() int {
	switch {
	case !v.Valid():
		return 0
	case v == TwoOrders:
		return 2
	}
	return 1
}

// VariantOf returns the variant of the i-th mail.
func VariantOf(i int) Variant { return Variant(i % int(numVariants)) }

// MessageID returns the Message-ID (without angle brackets) of the i-th
// mail.
func MessageID(i int) string { return MessageIDIn("", i) }

// MessageIDIn returns the Message-ID of the i-th mail of run: mails of
// different runs are different mails (""  is the run of Mail).
func MessageIDIn(run string, i int) string {
	if run == "" {
		return fmt.Sprintf("order-%06d@sample.plba.test", i)
	}
	return fmt.Sprintf("order-%06d.%s@sample.plba.test", i, run)
}

// Stats summarises the first n mails.
type Stats struct {
	// Mails is n.
	Mails int
	// Valid and Invalid count the mails by whether the pipeline accepts
	// them.
	Valid, Invalid int
	// Orders is the number of orders the valid mails yield.
	Orders int
}

// Count returns the Stats of Mail(0) ... Mail(n-1).
func Count(n int) Stats {
	s := Stats{Mails: n}
	for i := 0; i < n; i++ {
		v := VariantOf(i)
		if v.Valid() {
			s.Valid++
		} else {
			s.Invalid++
		}
		s.Orders += v.Orders()
	}
	return s
}

// Mail returns the raw RFC 5322 bytes (CRLF line ends) of the i-th sample
// mail.
func Mail(i int) []byte { return MailIn("", i) }

// MailIn is Mail(i) with the Message-ID of run (see MessageIDIn).
func MailIn(run string, i int) []byte {
	v := VariantOf(i)
	customers := []struct{ name, addr string }{
		{"Alice Buyer", "alice@buyer.example"},
		{"Bäckerei Müller", "einkauf@mueller-backwaren.example"},
		{"", "orders@acme.example"},
		{"=?utf-8?q?Fran=C3=A7oise_Dupont?=", "f.dupont@exemple.example"},
		{"Bob's Hardware", "bob@hardware.example"},
	}
	c := customers[i%len(customers)]
	from := c.addr
	if c.name != "" {
		if strings.HasPrefix(c.name, "=?") {
			from = c.name + " <" + c.addr + ">"
		} else {
			from = fmt.Sprintf("%q <%s>", c.name, c.addr)
		}
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	w("From: %s", from)
	w("To: Orders <orders@shop.example>")
	w("Subject: Order %d", 1000+i)
	w("Date: Mon, 06 Jan 2025 %02d:%02d:00 +0100", 8+i/60%10, i%60)
	w("Message-ID: <%s>", MessageIDIn(run, i))
	w("MIME-Version: 1.0")
	bnd := fmt.Sprintf("=_b%d", i)
	switch v {
	case BadNoAttachment:
		w("Content-Type: text/plain; charset=utf-8")
		w("")
		w("Hello, please send me 5 of A-100 at the usual price.")
		w("Thanks")
		return []byte(b.String())
	}
	w("Content-Type: multipart/mixed; boundary=%q", bnd)
	w("")
	w("--%s", bnd)
	w("Content-Type: text/plain; charset=utf-8")
	w("")
	w("Please find our order attached.")
	csvPart := func(name, body string) {
		w("--%s", bnd)
		w("Content-Type: text/csv; charset=utf-8; name=%q", name)
		w("Content-Disposition: attachment; filename=%q", name)
		w("")
		b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	}
	switch v {
	case PlainCSV, PlainCSV2, PlainCSV3, PlainCSV4:
		csvPart(fmt.Sprintf("order-%d.csv", i), csvLines(i, ','))
	case SemicolonCSV, SemicolonCSV2:
		csvPart("bestellung.csv", csvLines(i, ';'))
	case JSON, JSON2, JSON3:
		w("--%s", bnd)
		w("Content-Type: application/json; name=\"order.json\"")
		w("Content-Disposition: attachment; filename=\"order.json\"")
		w("")
		b.WriteString(jsonOrder(i))
		w("")
	case Base64CSV, Base64CSV2:
		w("--%s", bnd)
		w("Content-Type: text/csv; name=\"order.csv\"")
		w("Content-Disposition: attachment; filename=\"order.csv\"")
		w("Content-Transfer-Encoding: base64")
		w("")
		enc := base64.StdEncoding.EncodeToString([]byte(csvLines(i, ',')))
		for len(enc) > 76 {
			w("%s", enc[:76])
			enc = enc[76:]
		}
		w("%s", enc)
	case NestedQPCSV:
		inner := bnd + "_alt"
		w("--%s", bnd)
		w("Content-Type: multipart/related; boundary=%q", inner)
		w("")
		w("--%s", inner)
		w("Content-Type: text/html; charset=utf-8")
		w("")
		w("<p>Order attached</p>")
		w("--%s", inner)
		w("Content-Type: text/csv; charset=utf-8")
		w("Content-Disposition: inline; filename=\"order-inline.csv\"")
		w("Content-Transfer-Encoding: quoted-printable")
		w("")
		var qp strings.Builder
		qw := quotedprintable.NewWriter(&qp)
		_, _ = qw.Write([]byte(strings.ReplaceAll(csvLines(i, ';'), "\n", "\r\n")))
		_ = qw.Close()
		b.WriteString(qp.String())
		w("")
		w("--%s--", inner)
	case RFC2231Name:
		w("--%s", bnd)
		w("Content-Type: text/csv; name*=utf-8''Bestellung%%20M%%C3%%A4rz.csv")
		w("Content-Disposition: attachment; filename*=utf-8''Bestellung%%20M%%C3%%A4rz.csv")
		w("")
		b.WriteString(strings.ReplaceAll(csvLines(i, ';'), "\n", "\r\n"))
	case TwoOrders:
		csvPart("order-a.csv", csvLines(i, ','))
		csvPart("order-b.csv", csvLines(i+7, ','))
	case CSVAndLogo:
		csvPart("order.csv", csvLines(i, ','))
		w("--%s", bnd)
		w("Content-Type: image/png; name=\"logo.png\"")
		w("Content-Disposition: attachment; filename=\"logo.png\"")
		w("Content-Transfer-Encoding: base64")
		w("")
		w("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
	case BadSKU:
		csvPart("order.csv", "sku,qty,unit price\nA-100,2,12.50\n??,1,3.00\n")
	case BadQuantity:
		csvPart("order.csv", "sku,qty,unit price\nA-100,-2,12.50\n")
	case BadJSON:
		w("--%s", bnd)
		w("Content-Type: application/json; name=\"order.json\"")
		w("Content-Disposition: attachment; filename=\"order.json\"")
		w("")
		w(`{"lines": [{"sku": "A-100", "qty": 1, "unit_price": 2.5},`)
	case BadEmptyCSV:
		csvPart("order.csv", "sku,qty,unit price\n")
	}
	w("--%s--", bnd)
	return []byte(b.String())
}

// OrderMail returns a valid mail with Message-ID MessageID(i) and exactly
// one CSV order attachment of 1 to 4 lines: the benchmark's unit of work.
func OrderMail(i int) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	w("From: \"Alice Buyer\" <alice@buyer.example>")
	w("To: Orders <orders@shop.example>")
	w("Subject: Order %d", 1000+i)
	w("Date: Mon, 06 Jan 2025 10:00:00 +0100")
	w("Message-ID: <%s>", MessageID(i))
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/mixed; boundary=\"=_b\"")
	w("")
	w("--=_b")
	w("Content-Type: text/plain; charset=utf-8")
	w("")
	w("Please find our order attached.")
	w("--=_b")
	w("Content-Type: text/csv; charset=utf-8; name=\"order.csv\"")
	w("Content-Disposition: attachment; filename=\"order.csv\"")
	w("")
	b.WriteString(strings.ReplaceAll(csvLines(i, ','), "\n", "\r\n"))
	w("--=_b--")
	return []byte(b.String())
}

// csvLines is a small order of 1 to 4 lines, deterministic in i, with sep
// as the separator (';' also uses decimal commas).
func csvLines(i int, sep rune) string {
	var b strings.Builder
	if sep == ';' {
		b.WriteString("Artikelnummer;Menge;Einzelpreis\n")
	} else {
		b.WriteString("sku,qty,unit price\n")
	}
	n := i%4 + 1
	for k := 0; k < n; k++ {
		sku := fmt.Sprintf("A-%03d", (i*7+k*13)%1000)
		qty := (i+k)%9 + 1
		cents := 99 + (i*31+k*17)%5000
		price := fmt.Sprintf("%d.%02d", cents/100, cents%100)
		if sep == ';' {
			price = strings.Replace(price, ".", ",", 1)
		}
		fmt.Fprintf(&b, "%s%c%d%c%s\n", sku, sep, qty, sep, price)
	}
	return b.String()
}

func jsonOrder(i int) string {
	var lines []string
	for k := 0; k < i%3+1; k++ {
		lines = append(lines, fmt.Sprintf(`{"sku": "J-%03d", "qty": %d, "unit_price": "%d.%02d"}`,
			(i+k*5)%1000, k+1, 1+(i+k)%50, (i*3+k)%100))
	}
	return fmt.Sprintf(`{"customer": "C-%d", "reference": "PO-%d", "lines": [%s]}`, 1000+i%7, i, strings.Join(lines, ", "))
}
