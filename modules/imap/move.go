package imap

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// moveInto moves the messages of set to folder, created when missing
// (see ensureFolder; known caches the folders this connection checked).
// A folder deleted since it was checked (another client cleaning up)
// makes the move fail with NO [TRYCREATE], having moved nothing: it is
// created again and the move made once more, so the completion does not
// fail and wait its back-off for it.
func moveInto(c *imapclient.Client, set imap.UIDSet, folder string, known map[string]bool) error {
	if err := ensureFolder(c, folder, known); err != nil {
		return err
	}
	err := move(c, set, folder)
	if isNo(err, imap.ResponseCodeTryCreate) {
		delete(known, folder)
		if err := ensureFolder(c, folder, known); err != nil {
			return err
		}
		err = move(c, set, folder)
	}
	return err
}

// move moves the messages of set to folder: UID MOVE when the server has
// MOVE (or IMAP4rev2). Without it, UID COPY, and only once the server has
// answered OK to the copy, STORE \Deleted and EXPUNGE (UID EXPUNGE with
// UIDPLUS; a plain EXPUNGE also removes what others flagged \Deleted).
//
// go-imap's own fallback for Move sends the three commands at once, so
// a COPY the server refuses (the folder deleted meanwhile, a full quota)
// is still followed by the STORE and the EXPUNGE: the message was deleted
// without its copy. A copy made twice (the STORE failed, the completion
// is retried) leaves two copies in folder and loses nothing.
func move(c *imapclient.Client, set imap.UIDSet, folder string) error {
	caps := c.Caps()
	if caps.Has(imap.CapMove) {
		if _, err := c.Move(set, folder).Wait(); err != nil {
			return err
		}
		return nil
	}
	if _, err := c.Copy(set, folder).Wait(); err != nil {
		return fmt.Errorf("copy (no MOVE): %w", err)
	}
	err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if err != nil {
		return fmt.Errorf("flag \\Deleted after the copy (no MOVE): %w", err)
	}
	if caps.Has(imap.CapUIDPlus) {
		err = c.UIDExpunge(set).Close()
	} else {
		err = c.Expunge().Close()
	}
	if err != nil {
		return fmt.Errorf("expunge after the copy (no MOVE): %w", err)
	}
	return nil
}
