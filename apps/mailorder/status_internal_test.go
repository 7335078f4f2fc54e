package mailorder

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

type fakeDead []queue.DeadLetter

func (f fakeDead) ListDead(context.Context, string, int) ([]queue.DeadLetter, error) { return f, nil }

// A dead letter whose mail a later run stored (every order of it is in the
// store) is resolved: the status does not list it as failed.
func TestStatusResolvesDeadLettersOfMailsStoredLater(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Store.SQLite.Path = filepath.Join(t.TempDir(), "orders.db")
	st, err := OpenStore(ctx, cfg.Store)
	require.NoError(t, err)
	defer st.Close()
	svc, err := domain.NewService(st, cfg.Limits)
	require.NoError(t, err)

	var valid []int
	for i := 0; len(valid) < 2; i++ {
		if sample.VariantOf(i).Valid() && sample.VariantOf(i).Orders() > 0 {
			valid = append(valid, i)
		}
	}
	stored, notStored := valid[0], valid[1]
	_, err = svc.ProcessMail(ctx, sample.Mail(stored)) // the later run
	require.NoError(t, err)

	dead := fakeDead{}
	for _, i := range []int{stored, notStored} {
		dead = append(dead, queue.DeadLetter{Reason: "database down", Task: &task.Task{
			Payload: sample.Mail(i), Headers: map[string]string{imap.HeaderMessageID: sample.MessageID(i)}}})
	}
	dead = append(dead, queue.DeadLetter{Reason: "message of 9.1 MiB exceeds the queue's max payload of 8 MiB",
		Task: &task.Task{Headers: map[string]string{imap.HeaderMessageID: "big@example.com"}}})

	src, err := imap.NewSource(imap.Config{Host: "127.0.0.1", Username: "u", Password: "p", Kind: Kind}, nil)
	require.NoError(t, err)
	defer src.Close()
	a := &App{cfg: cfg, store: st, src: src, backend: dead}
	s, err := a.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, s.ResolvedMails)
	var failed []string
	for _, f := range s.FailedMails {
		failed = append(failed, f.MessageID)
	}
	require.Equal(t, []string{sample.MessageID(notStored), "big@example.com"}, failed)
}
