package mailorder_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/platform/task"
)

type nopStore struct{}

func (nopStore) SaveOrder(context.Context, domain.Order) (bool, error) { return true, nil }

// A mail whose MIME structure is broken is rejected with a reason that
// still names its sender and subject, read from its headers.
func TestBrokenMIMERejectionNamesSenderAndSubject(t *testing.T) {
	svc, err := domain.NewService(nopStore{}, domain.Config{})
	require.NoError(t, err)
	raw := "From: Alice <alice@example.com>\r\nSubject: Order 42\r\nMessage-ID: <broken@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all\r\n"
	err = mailorder.NewHandler(svc, nil).Handle(context.Background(), &task.Task{Payload: []byte(raw)})
	require.True(t, task.IsPermanent(err), "%v", err)
	require.EqualError(t, err, `permanent: mail <broken@example.com> from "alice@example.com" (subject "Order 42") rejected: multipart/mixed part without boundary`)
}

// The stand-in of a mail the queue refused fails for good with the
// refusal's reason, not with what an empty payload would say.
func TestRejectedStandInFailsWithItsReason(t *testing.T) {
	svc, err := domain.NewService(nopStore{}, domain.Config{})
	require.NoError(t, err)
	stand := task.Rejected(&task.Task{Headers: map[string]string{"message-id": "big@example.com"}},
		"message of 9.1 MiB exceeds the queue's max payload of 8 MiB")
	err = mailorder.NewHandler(svc, nil).Handle(context.Background(), stand)
	require.True(t, task.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "mail <big@example.com> not handled: message of 9.1 MiB exceeds the queue's max payload of 8 MiB")
}

// The Message-ID the source read from the server's envelope, which a
// reason names when the mail itself could not give one, is shown as the
// domain shows a mail's text: a bidirectional override or a control
// character in it (a hostile sender's) is replaced, so the dead letter's
// reason reads as it is on a page or a terminal.
func TestReasonShowsTheEnvelopeMessageIDClean(t *testing.T) {
	svc, err := domain.NewService(nopStore{}, domain.Config{})
	require.NoError(t, err)
	h := mailorder.NewHandler(svc, nil)
	id := "evil\u202emoc.elpmaxe\x1b[2J@example.com"
	stand := task.Rejected(&task.Task{Headers: map[string]string{"message-id": id}}, "too big")
	err = h.Handle(context.Background(), stand)
	require.EqualError(t, err, "permanent: mail <evil\ufffdmoc.elpmaxe\ufffd[2J@example.com> not handled: too big")
	err = h.Handle(context.Background(), &task.Task{Payload: []byte("Subject: x\r\n\r\nno sender\r\n"),
		Headers: map[string]string{"message-id": id}})
	require.True(t, task.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "mail <evil\ufffdmoc.elpmaxe\ufffd[2J@example.com> from")
}
