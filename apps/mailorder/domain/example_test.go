package domain_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plba/plba/apps/mailorder/domain"
)

func ExampleService_ProcessMail() {
	raw := []byte("From: Alice <alice@example.com>\r\n" +
		"Subject: Order\r\n" +
		"Message-ID: <example-1@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n" +
		"\r\n" +
		"--b\r\n" +
		"Content-Type: text/plain\r\n\r\nOur order.\r\n" +
		"--b\r\n" +
		"Content-Type: text/csv\r\n" +
		"Content-Disposition: attachment; filename*=UTF-8''Bestellung%20M%C3%A4rz.csv\r\n\r\n" +
		"Artikel;Menge;Preis\r\nab-100;2;12,50\r\nCD-200;1;0,99\r\n" +
		"--b--\r\n")

	store := newMemStore() // any domain.Store: sqlite.Store, postgres.Store
	svc, err := domain.NewService(store, domain.Config{Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		panic(err)
	}
	res, err := svc.ProcessMail(context.Background(), raw)
	if err != nil {
		panic(err)
	}
	o := res.Orders[0].Order
	fmt.Println(o.Customer, o.AttachmentName, res.Orders[0].Created)
	for _, l := range o.Lines {
		fmt.Println(l.SKU, l.Quantity, l.UnitPrice, l.Total)
	}
	fmt.Println("total", o.Total)

	_, err = svc.ProcessMail(context.Background(), []byte("From: bob@example.com\r\nSubject: hi\r\n\r\nno attachment\r\n"))
	var rej *domain.RejectError
	fmt.Println(errors.Is(err, domain.ErrRejected), errors.As(err, &rej) && rej.Reason != "")
	// Output:
	// alice@example.com Bestellung März.csv true
	// AB-100 2 12.50 25.00
	// CD-200 1 0.99 0.99
	// total 25.99
	// true true
}
