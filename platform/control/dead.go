package control

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
)

// MaxPayloadShown caps the payload of one dead letter in the API.
const MaxPayloadShown = 64 << 10

// DeadSummary is a dead letter in a list: no payload, its size.
type DeadSummary struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Key         string            `json:"key"`
	Reason      string            `json:"reason"`
	At          time.Time         `json:"at"`
	Attempts    int               `json:"attempts"`
	EnqueuedAt  time.Time         `json:"enqueued_at"`
	PayloadSize int               `json:"payload_size"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// DeadDetail is one dead letter with its payload (at most
// MaxPayloadShown bytes: text when it is UTF-8, base64 otherwise).
type DeadDetail struct {
	DeadSummary
	Queue            string `json:"queue"`
	Payload          string `json:"payload"`
	PayloadEncoding  string `json:"payload_encoding"` // "text" or "base64"
	PayloadTruncated bool   `json:"payload_truncated"`
}

// DeadList is a page of dead letters.
type DeadList struct {
	Items []DeadSummary `json:"items"`
	// Next is the cursor of the next page (the cursor parameter); empty
	// on the last page.
	Next string `json:"next,omitempty"`
}

func summary(d queue.DeadLetter) DeadSummary {
	t := d.Task
	return DeadSummary{ID: t.ID, Kind: t.Kind, Key: t.Key, Reason: d.Reason, At: d.At, Attempts: t.Attempt,
		EnqueuedAt: t.EnqueuedAt, PayloadSize: d.PayloadSize, Headers: t.Headers}
}

// filterOf reads the filters kind, reason, since and until (RFC 3339).
func filterOf(r *http.Request) (queue.DeadQuery, error) {
	v := r.URL.Query()
	q := queue.DeadQuery{Kind: v.Get("kind"), Reason: v.Get("reason"), Cursor: v.Get("cursor")}
	var err error
	if q.Since, err = timeParam(v.Get("since"), "since"); err != nil {
		return q, err
	}
	if q.Until, err = timeParam(v.Get("until"), "until"); err != nil {
		return q, err
	}
	if err := checkRange(q.Since, q.Until); err != nil {
		return q, err
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > queue.MaxDeadLimit {
			return q, status(http.StatusBadRequest, "limit %q: want 1 to %d", s, queue.MaxDeadLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func timeParam(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, status(http.StatusBadRequest, "%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, s)
	}
	return t, nil
}

// checkRange refuses since at or after until (both set): a range that
// holds nothing, most likely the two swapped; answering it with nothing
// matched would pass an action that did nothing off as done.
func checkRange(since, until time.Time) error {
	if since.IsZero() || until.IsZero() || since.Before(until) {
		return nil
	}
	return status(http.StatusBadRequest, "since %s is not before until %s: the range holds nothing (swapped?)",
		since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
}

func (a *API) listDead(w http.ResponseWriter, r *http.Request) error {
	q, err := filterOf(r)
	if err != nil {
		return err
	}
	page, err := a.backend.QueryDead(r.Context(), r.PathValue("queue"), q)
	if err != nil {
		return err
	}
	if len(page.Items) == 0 && q.Cursor == "" {
		if err := a.knownQueue(r, r.PathValue("queue")); err != nil {
			return err
		}
	}
	out := DeadList{Items: make([]DeadSummary, 0, len(page.Items)), Next: page.Next}
	for _, d := range page.Items {
		out.Items = append(out.Items, summary(d))
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getDead(w http.ResponseWriter, r *http.Request) error {
	d, err := a.backend.GetDead(r.Context(), r.PathValue("queue"), r.PathValue("id"))
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, detail(d))
	return nil
}

func detail(d queue.DeadLetter) DeadDetail {
	out := DeadDetail{DeadSummary: summary(d), Queue: d.Task.Queue}
	p := d.Task.Payload
	out.PayloadSize = len(p)
	if len(p) > MaxPayloadShown {
		p, out.PayloadTruncated = p[:MaxPayloadShown], true
	}
	if utf8.Valid(p) || (out.PayloadTruncated && utf8.Valid(trimPartialRune(p))) {
		out.Payload, out.PayloadEncoding = string(p), "text"
	} else {
		out.Payload, out.PayloadEncoding = base64.StdEncoding.EncodeToString(p), "base64"
	}
	return out
}

// trimPartialRune drops an incomplete UTF-8 sequence a cut left at the end.
func trimPartialRune(p []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(p) > 0; i++ {
		if utf8.Valid(p) {
			return p
		}
		p = p[:len(p)-1]
	}
	return p
}
