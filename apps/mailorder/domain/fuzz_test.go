package domain_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/plba/plba/apps/mailorder/domain"
)

// fuzzConfig keeps every fuzz iteration small and bounded.
var fuzzConfig = domain.Config{MaxMailBytes: 1 << 20, MaxAttachmentBytes: 256 << 10, MaxParts: 64, MaxDepth: 8}

// FuzzParseMail checks that no input makes the extract, parse and validate
// steps panic, that every failure is a rejection (never an unclassified
// error) and that every order's text is fit to store: go test -run '^$' -fuzz FuzzParseMail ./apps/mailorder/domain
func FuzzParseMail(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed mails: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n"))
	// The lenient readers: a From with 8-bit bytes, RFC 2231 names in
	// continuations and other charsets, a Content-Type the standard reader
	// gives up on, a mail forwarded as an attachment (base64 too).
	for _, s := range []string{
		"From: M\xfcller <b@example.com>\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n",
		"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=\"XX\"; x=[1]\r\n\r\n--XX\r\n" +
			"Content-Type: application/octet-stream; charset=iso-8859-1; name=B\xe4.csv\r\n" +
			"Content-Disposition: attachment; filename*0*=iso-8859-1''Bestell; filename*1*=ung%E4; filename*2=\".csv\"\r\n\r\n" +
			"sku,qty,price\r\nAB-1,1,1\r\n--XX--\r\n",
		"From: a@b.c\r\nMessage-ID: <o@b.c>\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n" +
			"Content-Type: message/rfc822; name=\"F.eml\"\r\nContent-Disposition: attachment; filename=\"F.eml\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" +
			"RnJvbTogY0BiLmMNCkNvbnRlbnQtVHlwZTogdGV4dC9jc3Y7IG5hbWU9by5jc3YNCg0Kc2t1LHF0eSxwcmljZQ0KQUItMSwxLDENCg==\r\n" +
			"--XX\r\nContent-Type: text/csv; name*=UTF-8''o%C3%A4.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n--XX--\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		orders, _, err := domain.BuildOrders(raw, fuzzConfig)
		if err != nil {
			if !errors.Is(err, domain.ErrRejected) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(orders) == 0 {
			t.Fatal("no error and no orders")
		}
		for _, o := range orders {
			if p := orderTextProblems(o); len(p) > 0 {
				t.Fatalf("order text a store cannot keep: %q", p)
			}
			if strings.ContainsRune(o.Customer, '\ufffd') {
				t.Fatalf("customer %q holds U+FFFD: it could be another sender's", o.Customer)
			}
			var sum domain.Money
			for _, l := range o.Lines {
				if l.Quantity <= 0 || l.UnitPrice < 0 {
					t.Fatalf("invalid line passed: %+v", l)
				}
				sum += l.Total
			}
			if sum != o.Total {
				t.Fatalf("total %v != sum of lines %v", o.Total, sum)
			}
		}
	})
}

// FuzzParseCSV checks that ParseCSV and Validate never panic and only fail
// with rejections: go test -run '^$' -fuzz FuzzParseCSV ./apps/mailorder/domain
func FuzzParseCSV(f *testing.F) {
	for _, s := range []string{
		"sku,qty,price\nA-100,2,12.50\n",
		"Artikel;Menge;Preis\r\nx-1;5;1,5\r\n",
		"item,amount,unit_price\n\"A-1\",2,\"1,50\"\n",
		"sku,qty,price\n\"broken,1,1\n",
		"",
		"\ufeffsku\tqty\tprice\nA-1\t1\t1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := domain.ParseCSV("f.csv", data, 500)
		if err != nil {
			if !errors.Is(err, domain.ErrRejected) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(d.Lines) > 500 {
			t.Fatalf("%d lines passed the limit", len(d.Lines))
		}
		if _, _, err := domain.Validate(d, domain.Config{}); err != nil && !errors.Is(err, domain.ErrRejected) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

// FuzzParseJSON checks that ParseJSON and Validate never panic and only
// fail with rejections, and that a parse is the same every time (the
// order of a Go map must not choose between two values of one field): go
// test -run '^$' -fuzz FuzzParseJSON ./apps/mailorder/domain
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`[{"sku":"A-1","qty":1,"price":"1.50"}]`,
		`{"customer":4711,"reference":"PO 9","lines":[{"article":"a-1","menge":3,"preis":"2,50"}]}`,
		`{"lines":[{"sku":"A-1","qty":1,"price":1}],"items":[]}`,
		`[{"sku":"A-1","qty":1,"qty":2,"price":1}]`,
		`{"lines": [`,
		`[1, null, {}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := domain.ParseJSON("f.json", data, 500)
		if err != nil {
			if !errors.Is(err, domain.ErrRejected) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(d.Lines) > 500 {
			t.Fatalf("%d lines passed the limit", len(d.Lines))
		}
		again, err := domain.ParseJSON("f.json", data, 500)
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("parsed differently the second time: %+v, then %+v (%v)", d, again, err)
		}
		if _, _, err := domain.Validate(d, domain.Config{}); err != nil && !errors.Is(err, domain.ErrRejected) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
