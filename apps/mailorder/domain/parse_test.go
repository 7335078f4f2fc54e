package domain_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
)

func TestParseMoney(t *testing.T) {
	t.Parallel()
	ok := map[string]domain.Money{
		"12": 1200, "12.5": 1250, "12,50": 1250, " 0.05 ": 5, "-3.00": -300, "+7": 700,
		".5": 50, "0": 0, "999999999999999.99": 99999999999999999,
	}
	for in, want := range ok {
		got, err := domain.ParseMoney(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-", "abc", "1.234,50", "1,234.50", "12.505", "1e3", "12.", "1 000", "1234567890123456", "--1", "0x10", "NaN"} {
		_, err := domain.ParseMoney(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "12.50", domain.Money(1250).String())
	require.Equal(t, "-0.05", domain.Money(-5).String())
	require.Equal(t, "0.00", domain.Money(0).String())
}

func TestParseCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		lines      []domain.DraftLine
		reject     []string
	}{
		{name: "comma", data: "sku,qty,price\nA-1,2,1.50\n",
			lines: []domain.DraftLine{{SourceLine: 2, SKU: "A-1", Quantity: 2, UnitPrice: 150}}},
		{name: "semicolon decimal comma with BOM and CRLF", data: "\ufeffArtikel;Menge;Preis\r\nA-1;2;1,50\r\n\r\nB-2;1;3\r\n",
			lines: []domain.DraftLine{{SourceLine: 2, SKU: "A-1", Quantity: 2, UnitPrice: 150}, {SourceLine: 4, SKU: "B-2", Quantity: 1, UnitPrice: 300}}},
		{name: "quoted decimal comma", data: "item,amount,unit_price\n\"A-1\",2,\"1,50\"\n",
			lines: []domain.DraftLine{{SourceLine: 2, SKU: "A-1", Quantity: 2, UnitPrice: 150}}},
		{name: "tab separated, reordered columns", data: "Unit Price\tSKU\tQuantity\n9.99\tZ-9\t4\n",
			lines: []domain.DraftLine{{SourceLine: 2, SKU: "Z-9", Quantity: 4, UnitPrice: 999}}},
		{name: "unquoted decimal comma", data: "sku,qty,price\nA-1,2,1,50\n", reject: []string{"line 2", "quoted"}},
		{name: "missing column", data: "sku,qty\nA-1,2\n", reject: []string{"line 1", `field "unit_price"`, "no unit_price column"}},
		{name: "duplicate column", data: "sku,article,qty,price\n", reject: []string{`"sku" given twice`}},
		{name: "short row", data: "sku,qty,price\nA-1,2\n", reject: []string{"line 2", `field "unit_price"`}},
		{name: "decimal qty", data: "sku,qty,price\nA-1,2.5,1\n", reject: []string{"line 2", `field "qty"`, "whole number"}},
		{name: "bad price", data: "sku;qty;price\nA-1;2;1.234,50\n", reject: []string{"line 2", `field "unit_price"`, "thousands"}},
		{name: "bad quotes", data: "sku,qty,price\n\"A-1,2,1\n", reject: []string{"malformed CSV"}},
		{name: "empty", data: "", reject: []string{"empty"}},
		{name: "blank lines only", data: "\n\n  \n", reject: []string{"empty"}},
		{name: "binary", data: "\xff\xfe\x00garbage", reject: []string{"UTF-8"}},
		{name: "too many lines", data: "sku,qty,price\nA-1,1,1\nA-2,1,1\nA-3,1,1\n", reject: []string{"line 4", "more than 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := domain.ParseCSV("o.csv", []byte(tt.data), 2)
			if tt.reject != nil {
				require.ErrorIs(t, err, domain.ErrRejected)
				for _, s := range tt.reject {
					require.ErrorContains(t, err, s)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.lines, d.Lines)
		})
	}
}

func TestParseJSON(t *testing.T) {
	t.Parallel()
	d, err := domain.ParseJSON("o.json", []byte(`[{"article":"a-1","menge":3,"preis":"2,50"},{"product_code":"B-2","quantity":"1","unit price":10}]`), 10)
	require.NoError(t, err)
	require.Equal(t, []domain.DraftLine{
		{SourceLine: 1, SKU: "a-1", Quantity: 3, UnitPrice: 250},
		{SourceLine: 2, SKU: "B-2", Quantity: 1, UnitPrice: 1000},
	}, d.Lines)

	d, err = domain.ParseJSON("o.json", []byte(`{"Customer": 4711, "reference": "PO 9", "lines": []}`), 10)
	require.NoError(t, err)
	require.Equal(t, "4711", d.CustomerRef)
	require.Equal(t, "PO 9", d.Reference)
	_, _, err = domain.Validate(d, domain.Config{})
	require.ErrorContains(t, err, "no order lines")

	for in, want := range map[string]string{
		``:                                    "empty",
		`{"lines": [`:                         "malformed JSON",
		`"text"`:                              "must be an object",
		`{"customer":"x"}`:                    `no "lines"`,
		`{"lines": {}}`:                       "array",
		`[1]`:                                 "line 1: line is not an object",
		`[{"sku":"A-1","qty":1}]`:             `line 1 field "unit_price": missing`,
		`[{"sku":"A-1","qty":1.5,"price":1}]`: "whole number",
		`[{"sku":"A-1","qty":1,"price":1e3}]`: `field "unit_price"`,
		`[{"sku":true,"qty":1,"price":1}]`:    `field "sku": must be a string or number`,
	} {
		_, err := domain.ParseJSON("o.json", []byte(in), 10)
		require.ErrorIs(t, err, domain.ErrRejected, in)
		require.ErrorContains(t, err, want, in)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := domain.Draft{Attachment: "o.csv", Lines: []domain.DraftLine{{SourceLine: 2, SKU: " ab-12 ", Quantity: 3, UnitPrice: 199}}}
	lines, total, err := domain.Validate(ok, domain.Config{})
	require.NoError(t, err)
	require.Equal(t, []domain.Line{{No: 1, SourceLine: 2, SKU: "AB-12", Quantity: 3, UnitPrice: 199, Total: 597}}, lines)
	require.Equal(t, domain.Money(597), total)

	for _, tt := range []struct {
		line domain.DraftLine
		want string
	}{
		{domain.DraftLine{SourceLine: 5, SKU: "-AB", Quantity: 1}, `line 5 field "sku": invalid SKU`},
		{domain.DraftLine{SourceLine: 5, SKU: "AB", Quantity: 1}, `invalid SKU`},
		{domain.DraftLine{SourceLine: 5, SKU: "", Quantity: 1}, `SKU is empty`},
		{domain.DraftLine{SourceLine: 5, SKU: "A234567890123456789012345678901234", Quantity: 1}, `invalid SKU`},
		{domain.DraftLine{SourceLine: 5, SKU: "ABC", Quantity: 0}, `field "qty": quantity must be a positive`},
		{domain.DraftLine{SourceLine: 5, SKU: "ABC", Quantity: 2_000_000}, `more than the limit`},
		{domain.DraftLine{SourceLine: 5, SKU: "ABC", Quantity: 1, UnitPrice: -1}, `field "unit_price": unit price must not be negative`},
		{domain.DraftLine{SourceLine: 5, SKU: "ABC", Quantity: 1, UnitPrice: domain.MaxUnitPrice + 1}, `more than the limit`},
	} {
		_, _, err := domain.Validate(domain.Draft{Attachment: "o.csv", Lines: []domain.DraftLine{tt.line}}, domain.Config{})
		require.ErrorIs(t, err, domain.ErrRejected)
		require.ErrorContains(t, err, `attachment "o.csv"`)
		require.ErrorContains(t, err, tt.want)
	}

	// 500 lines at the maximum price and quantity: exact, no overflow.
	big := domain.Draft{Attachment: "big.csv"}
	for i := 0; i < 500; i++ {
		big.Lines = append(big.Lines, domain.DraftLine{SourceLine: i + 2, SKU: "MAX-1", Quantity: 1_000_000, UnitPrice: domain.MaxUnitPrice})
	}
	_, _, err = domain.Validate(big, domain.Config{})
	require.ErrorContains(t, err, "order total too large")
}

// A JSON order that gives a key twice (the same key, or two of its
// aliases) is ambiguous: it is rejected naming the key. Before, the last
// of two equal keys won silently, and of two aliases ("lines" and
// "items") whichever Go's map order visited last: an order lost the
// lines of the other, differently on every run.
func TestJSONKeyGivenTwiceIsRejected(t *testing.T) {
	t.Parallel()
	const a, b = `[{"sku":"A-1","qty":1,"price":1}]`, `[{"sku":"B-2","qty":2,"price":2}]`
	for in, want := range map[string]string{
		`{"lines":` + a + `,"items":` + b + `}`:                                         `field "lines": given twice`,
		`{"lines":` + a + `,"lines":` + b + `}`:                                         `field "lines": given twice`,
		`{"customer":"C-1","customer_no":"C-2","lines":` + a + `}`:                      `field "customer": given twice`,
		`{"reference":"P-1","PO":"P-2","lines":` + a + `}`:                              `field "reference": given twice`,
		`[{"sku":"A-1","qty":1,"qty":100,"price":1}]`:                                   `line 1 field "qty": given twice`,
		`[{"sku":"A-1","qty":1,"price":1},{"sku":"A-1","sku":"B-2","qty":1,"price":1}]`: `line 2 field "sku": given twice`,
	} {
		for range 20 { // map order is random: every run must reject
			_, err := domain.ParseJSON("o.json", []byte(in), 10)
			require.ErrorIs(t, err, domain.ErrRejected, in)
			require.ErrorContains(t, err, want, in)
		}
	}
	// A key that is not read may repeat.
	d, err := domain.ParseJSON("o.json", []byte(`{"note":"x","note":"y","lines":`+a+`}`), 10)
	require.NoError(t, err)
	require.Len(t, d.Lines, 1)
}

// A JSON order reads the same on every run: its notes in one order, and
// of two problems always the same one reported (a redelivered mail's
// audit and dead-letter reason do not depend on Go's map order).
func TestJSONParseIsTheSameEveryTime(t *testing.T) {
	t.Parallel()
	in := []byte(`{"customer":"C\u0000","reference":"R\u0000","lines":[{"sku":"A-1","qty":1,"price":1}]}`)
	first, err := domain.ParseJSON("o.json", in, 10)
	require.NoError(t, err)
	bad := []byte(`[{"sku":true,"qty":[],"price":{}}]`)
	_, firstErr := domain.ParseJSON("o.json", bad, 10)
	require.Error(t, firstErr)
	for range 50 {
		d, err := domain.ParseJSON("o.json", in, 10)
		require.NoError(t, err)
		require.Equal(t, first, d)
		_, err = domain.ParseJSON("o.json", bad, 10)
		require.Equal(t, firstErr.Error(), err.Error())
	}
}

// ParseAttachment read an attachment with a declared charset through a
// limit of 4*MaxAttachmentBytes+4 bytes and kept what came through: a
// caller's Attachment larger than that (ParseMail refuses one, but
// ParseAttachment is the parse step's own entry) gave an order of the
// lines before the cut, the rest silently lost. Such an attachment is
// refused, as ParseMail refuses it.
func TestParseAttachmentNeverCutsAnOrderShort(t *testing.T) {
	t.Parallel()
	const lines = 600
	data := []byte("sku,qty,price\n" + strings.Repeat("AB-1,1,1\n", lines)) // 4100 bytes end on a line
	cfg := domain.Config{MaxAttachmentBytes: 1024, MaxLinesPerOrder: 1000}
	for _, cs := range []string{"iso-8859-1", ""} {
		d, err := domain.ParseAttachment(domain.Attachment{Name: "o.csv", Kind: domain.KindCSV, Charset: cs, Data: data}, cfg)
		require.ErrorIs(t, err, domain.ErrRejected, "charset %q: got %d lines of %d", cs, len(d.Lines), lines)
		require.ErrorContains(t, err, "larger than the limit of 1024 bytes")
	}
	d, err := domain.ParseAttachment(domain.Attachment{Name: "o.csv", Kind: domain.KindCSV, Charset: "iso-8859-1", Data: data}, domain.Config{MaxLinesPerOrder: 1000})
	require.NoError(t, err)
	require.Len(t, d.Lines, lines)
}
