package jetstream

import (
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// isMsgNotFound reports whether err says that the message asked for is
// not stored, and nothing else: a get answered "message not found"
// (err_code 10037, jetstream.ErrMsgNotFound: the API's answer and a
// direct get's 404 alike), or a delete the server refused because the
// message was gone already (deleted for an ack, or by another replica,
// since it was read). A stream or consumer that is not found (10059,
// 10014), a stream without responders, a timeout, is not "no such
// message": the caller did not search, and says so (an error), or
// handles a stream gone on its own (storeGone, restore.go).
//
// nats.go reports a refused delete as ErrMsgDeleteUnsuccessful with the
// server's error as text only ("...: nats: API error: code=500
// err_code=10057 description=no message found"): its error code and
// description are read from that text (deleteRefusal). A message gone
// is err_code 10043 ("sequence N not found": a memory store, or a
// clustered stream's leader that found nothing to remove), or err_code
// 10057 (the store's error) with "no message found", or "stream store
// EOF" (a sequence past the stream's last: the message went with a
// stream set up again). Other 10057 descriptions (an I/O error, "message
// delete not permitted") are failures. Checked on nats-server 2.9 and
// 2.15 (TestMessageNotFoundIsNothingElse).
func isMsgNotFound(err error) bool {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return false
	}
	code, desc, ok := deleteRefusal(err)
	if !ok {
		return false
	}
	switch code {
	case errSequenceNotFound:
		return true
	case errMsgDeleteFailed:
		return desc == "no message found" || desc == "stream store EOF"
	}
	return false
}

// Error codes of a refused delete (nats-server's JSSequenceNotFoundErrF
// and JSStreamMsgDeleteFailedF), which nats.go has no names for.
const (
	errSequenceNotFound jetstream.ErrorCode = 10043
	errMsgDeleteFailed  jetstream.ErrorCode = 10057
)

// deleteRefusal reads the server's error code and description from the
// text of a refused delete (ErrMsgDeleteUnsuccessful), which nats.go
// writes with APIError's format: "... err_code=N description=D".
func deleteRefusal(err error) (code jetstream.ErrorCode, desc string, ok bool) {
	_, rest, found := strings.Cut(err.Error(), "err_code=")
	if !found {
		return 0, "", false
	}
	num, desc, found := strings.Cut(rest, " description=")
	if !found {
		return 0, "", false
	}
	n, perr := strconv.ParseUint(num, 10, 16)
	if perr != nil {
		return 0, "", false
	}
	return jetstream.ErrorCode(n), desc, true
}
