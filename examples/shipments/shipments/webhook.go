package shipments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// WebhookPath is where the warehouse posts shipment events.
const WebhookPath = "/shipments/v1/webhook"

// maxEvent bounds a webhook body.
const maxEvent = 64 << 10

// Event is a shipment event from the warehouse.
type Event struct {
	Shipment string `json:"shipment"`
	Order    string `json:"order"`
	Email    string `json:"email"`
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// validate names the first problem of e.
func (e Event) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"shipment", e.Shipment}, {"order", e.Order}, {"email", e.Email}, {"carrier", e.Carrier}, {"tracking", e.Tracking}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if _, err := mail.ParseAddress(e.Email); err != nil {
		return fmt.Errorf("email %q: %v", e.Email, err)
	}
	return nil
}

// decodeEvent decodes body, which must hold one Event and nothing else:
// a second event after the first would be signed, and dropped unseen. It
// must be UTF-8 (RFC 8259): decoded, an invalid byte would become U+FFFD,
// and two shipment ids that differ in one such byte would be one key.
func decodeEvent(body []byte) (Event, error) {
	var ev Event
	if !utf8.Valid(body) {
		return ev, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ev, errors.New("more after the event: one event per post")
	}
	return ev, nil
}

// webhook accepts shipment events and enqueues a notice for each: 202 with
// the task's id (Answer), 401 with the reason for an event without a valid
// signature or signed outside the tolerance (VerifySignature), 400 for an
// event it cannot use (or whose notice the queue refuses for good:
// queue.ErrInvalidTask, queue.ErrTooLarge), 503 with Retry-After when the
// queue does not take it, or has no room within
// Config.WebhookEnqueueTimeout (the warehouse retries). The same signed
// request posted again within the tolerance is answered 202 as the first
// time, with "duplicate": true, and not queued again (replays); posted
// again while the first is still being queued it is answered 409 with
// Retry-After, since the first may yet fail; its retry gets the first's
// answer once the first was queued, and is queued itself if the first
// failed. The task's key is the shipment, so an event signed anew
// and posted twice makes one notice while the queue de-duplicates it, and
// the answer says that the queue dropped it. The route is public (the
// warehouse holds no admin credentials): the signature is its check. Each
// signed event is audited (admin.Audit: action shipment.event, the
// shipment, the answer's task and result); the admin server records no
// public call itself with authentication on, and an event refused for its
// signature is only logged.
func webhook(cfg Config, e task.Enqueuer, log *zap.Logger) admin.Route {
	seen, log := newReplays(), log.Named("shipments")
	return admin.Route{Pattern: "POST " + WebhookPath, Role: admin.RolePublic, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxEvent+1))
		if err != nil {
			http.Error(w, "shipment event: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxEvent {
			http.Error(w, "shipment event: larger than 64 KiB", http.StatusRequestEntityTooLarge)
			return
		}
		now := time.Now()
		sig, sent, err := verify(cfg.WebhookSecret, r.Header.Get(SignatureHeader), body, now, cfg.WebhookTolerance)
		if err != nil {
			log.Info("webhook: event refused", zap.String("remote", r.RemoteAddr), zap.String("reason", err.Error()))
			http.Error(w, "shipment event: "+err.Error(), http.StatusUnauthorized)
			return
		}
		// Signed: the event is audited, with the answer's status as its
		// result (the admin server records no entry of its own for a
		// public route's call with authentication on).
		entry := admin.AuditEntry{Action: "shipment.event", Identity: "warehouse", Role: admin.RolePublic, Auth: "signature"}
		defer func() { admin.Audit(r, entry) }()
		ev, evErr := decodeEvent(body)
		if evErr == nil && ev.Shipment != "" {
			entry.Target = "shipment/" + ev.Shipment
		}
		switch a, c := seen.claim(sig, now); c {
		case claimSeen:
			log.Info("webhook: event received before, not queued again", zap.String("remote", r.RemoteAddr), zap.String("task", a.Task))
			a.Duplicate = true
			entry.Params = answerParams(a)
			accepted(w, a)
			return
		case claimBusy:
			// Not acknowledged: the first may yet fail. Its retry is
			// answered as the first was.
			log.Info("webhook: event being queued by an earlier request, not queued again", zap.String("remote", r.RemoteAddr))
			entry.Error = "being queued by an earlier request"
			w.Header().Set("Retry-After", "5")
			http.Error(w, "shipment event: the same signed event is being queued by an earlier request, try again", http.StatusConflict)
			return
		}
		defer seen.release(sig)
		if evErr != nil {
			entry.Error = evErr.Error()
			http.Error(w, "shipment event: "+evErr.Error(), http.StatusBadRequest)
			return
		}
		if err := ev.validate(); err != nil {
			entry.Error = err.Error()
			http.Error(w, "shipment event: "+err.Error(), http.StatusBadRequest)
			return
		}
		t, err := Notice.New(NoticeArgs(ev))
		if err != nil {
			entry.Error = err.Error()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		t.Key = "notice/" + ev.Shipment
		ctx, cancel := context.WithTimeout(r.Context(), cfg.WebhookEnqueueTimeout)
		err = e.Enqueue(ctx, t)
		cancel()
		if err != nil && (errors.Is(err, queue.ErrInvalidTask) || errors.Is(err, queue.ErrTooLarge)) {
			// Refused for good: the same event is never queued, so no
			// retry is asked for.
			log.Info("webhook: notice refused by the queue", zap.String("remote", r.RemoteAddr), zap.Error(err))
			entry.Error = "refused by the queue: " + err.Error()
			http.Error(w, "shipment event: the queue refuses its notice (a shipment id it cannot carry, or too large): "+err.Error(), http.StatusBadRequest)
			return
		}
		if err != nil {
			log.Warn("webhook: enqueue notice", zap.String("shipment", ev.Shipment), zap.Error(err))
			entry.Error = "not queued: " + err.Error()
			status := http.StatusServiceUnavailable
			if r.Context().Err() != nil {
				status = http.StatusRequestTimeout // the client is gone
			} else {
				w.Header().Set("Retry-After", "5")
			}
			http.Error(w, "shipment event not queued, try again", status)
			return
		}
		a := enqueued(t)
		entry.Params = answerParams(a)
		seen.add(sig, a, sent.Add(cfg.WebhookTolerance), now)
		accepted(w, a)
	})}
}

// Answer is the webhook's 202 body.
type Answer struct {
	// Task is the id of the notice that holds the event's shipment: the
	// one just queued, or the one queued before that a duplicate was
	// dropped for. Empty when that notice has finished, or its id is
	// unknown.
	Task string `json:"task,omitempty"`
	// Duplicate says the event was not queued: the same signed request
	// was received before, or the queue dropped its notice because one
	// for the shipment was queued or finished within the queue's
	// de-duplication window.
	Duplicate bool `json:"duplicate,omitempty"`
	// Finished is, for a duplicate whose shipment's notice finished, how
	// it finished: "succeeded" or "dead_lettered".
	Finished string `json:"finished,omitempty"`
}

// enqueued is the answer for t after Enqueue returned nil: queued, or
// dropped by the queue as a duplicate of the notice holding its key
// (task.Held, task.Finished).
func enqueued(t *task.Task) Answer {
	if by, ok := task.Held(t); ok {
		return Answer{Task: by, Duplicate: true}
	}
	if o, _, ok := task.Finished(t); ok {
		return Answer{Duplicate: true, Finished: string(o)}
	}
	return Answer{Task: t.ID}
}

// answerParams are an accepted event's audit parameters: what its
// answer said.
func answerParams(a Answer) map[string]any {
	p := map[string]any{"task": a.Task, "duplicate": a.Duplicate}
	if a.Finished != "" {
		p["finished"] = a.Finished
	}
	return p
}

// accepted answers 202 with a.
func accepted(w http.ResponseWriter, a Answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(a)
}

// sink is the demo notification service: it logs each message. It is
// public, as the service it stands in for is outside the admin server.
func sink(log *zap.Logger) admin.Route {
	return admin.Route{Pattern: "/shipments/v1/sink", Role: admin.RolePublic, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			return // health check
		}
		var m Message
		if err := json.NewDecoder(io.LimitReader(r.Body, maxEvent)).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Info("demo sink: message", zap.String("to", m.To), zap.String("subject", m.Subject), zap.String("body", m.Body))
	})}
}
