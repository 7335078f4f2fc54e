package dovecottest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Save delivers raw with doveadm save into mailbox (created when
// missing), as a mail delivery agent would: clients idling on the mailbox
// are told.
func (s *Server) Save(mailbox string, raw []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "doveadm", "-c", s.conf, "save", "-u", Username, "-m", mailbox)
	cmd.Stdin = strings.NewReader(string(raw))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dovecottest: doveadm save: %w: %s", err, out)
	}
	return nil
}

// Dial logs in to the server as Username.
func (s *Server) Dial() (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: dial: %w", err)
	}
	if err := c.Login(Username, Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("dovecottest: login: %w", err)
	}
	return c, nil
}

// Append puts the messages into mailbox over IMAP (pipelined APPENDs):
// the quick way to deliver many.
func (s *Server) Append(mailbox string, msgs ...[]byte) error {
	c, err := s.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := ensure(c, mailbox); err != nil {
		return err
	}
	const window = 64
	var cmds []*imapclient.AppendCommand
	wait := func() error {
		for _, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				return fmt.Errorf("dovecottest: append: %w", err)
			}
		}
		cmds = cmds[:0]
		return nil
	}
	for _, m := range msgs {
		cmd := c.Append(mailbox, int64(len(m)), nil)
		if _, err := cmd.Write(m); err != nil {
			return fmt.Errorf("dovecottest: append: %w", err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("dovecottest: append: %w", err)
		}
		if cmds = append(cmds, cmd); len(cmds) == window {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	if err := wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

func ensure(c *imapclient.Client, mailbox string) error {
	if strings.EqualFold(mailbox, "INBOX") {
		return nil
	}
	err := c.Create(mailbox, nil).Wait()
	var ie *imap.Error
	if err != nil && !(errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists) {
		return fmt.Errorf("dovecottest: create %q: %w", mailbox, err)
	}
	return nil
}

// MessageIDs returns the Message-IDs (without brackets) of the messages
// in mailbox, not counting those flagged \Deleted; a mailbox that does
// not exist has none.
func (s *Server) MessageIDs(mailbox string) ([]string, error) {
	c, err := s.Dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	list, err := c.List("", mailbox, nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("dovecottest: list %q: %w", mailbox, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("dovecottest: examine %q: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("dovecottest: search %q: %w", mailbox, err)
	}
	uids := data.AllUIDs()
	if len(uids) == 0 {
		return nil, nil
	}
	bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("dovecottest: fetch %q: %w", mailbox, err)
	}
	ids := make([]string, 0, len(bufs))
	for _, b := range bufs {
		if b.Envelope != nil {
			ids = append(ids, b.Envelope.MessageID)
		}
	}
	return ids, nil
}

// Count returns how many messages mailbox holds (0 when it does not
// exist).
func (s *Server) Count(mailbox string) (int, error) {
	ids, err := s.MessageIDs(mailbox)
	return len(ids), err
}
