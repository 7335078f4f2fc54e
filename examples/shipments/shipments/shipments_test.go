package shipments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/plbatest"
	"github.com/plba/plba/platform/source"

	"example.com/shipments/shipments"
)

// notifyService is a fake notification service: it records messages and
// answers with the statuses queued in fail first, then 200.
type notifyService struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []shipments.Message
	fail []int
}

func newNotifyService(t *testing.T, fail ...int) *notifyService {
	s := &notifyService{fail: fail}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.fail) > 0 {
			code := s.fail[0]
			s.fail = s.fail[1:]
			http.Error(w, "refused by the test", code)
			return
		}
		var m shipments.Message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.msgs = append(s.msgs, m)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *notifyService) messages() []shipments.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shipments.Message(nil), s.msgs...)
}

// start runs the application against svc, the digest off unless extra
// configuration turns it on; it returns the kit and the webhook's URL.
func start(t *testing.T, svc *notifyService, extra ...plbatest.Option) (*plbatest.Kit, string) {
	var srv *admin.Server
	opts := append([]plbatest.Option{
		plbatest.Config(fmt.Sprintf("shipments:\n  notify_url: %s\n  webhook_secret: %s\n  digest:\n    enabled: false\n", svc.URL, secret)),
		plbatest.With(fx.Populate(&srv)),
	}, extra...)
	k := plbatest.Start(t, shipments.Module, opts...)
	return k, "http://" + srv.Addr() + shipments.WebhookPath
}

// secret is the webhook secret of the tests' configuration.
const secret = "test-webhook-secret-0123"

// post posts body to url signed with secret, now.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	return postSigned(t, url, body, shipments.Sign(secret, time.Now(), []byte(body)))
}

func postSigned(t *testing.T, url, body, signature string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(shipments.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

const event = `{"shipment":"s-1","order":"o-17","email":"ada@example.com","carrier":"DHL","tracking":"JD0123"}`

// An event posted to the webhook becomes a shipping notice and, three
// days later by the kit's clock (no real waiting), a feedback request.
func TestWebhookSendsNoticeThenFeedback(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	k, url := start(t, svc)

	code, body := post(t, url, event)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Contains(t, body, `"task":`)
	k.RunUntilIdle()

	require.Len(t, k.Succeeded(shipments.Notice.Name()), 1)
	require.Len(t, k.Succeeded(shipments.Feedback.Name()), 1)
	plbatest.RequireEnqueued(k, shipments.Notice.Name(), shipments.Feedback, shipments.FeedbackArgs{Shipment: "s-1", Email: "ada@example.com"})
	require.GreaterOrEqual(t, k.Clock().Skipped(), 71*time.Hour)

	msgs := svc.messages()
	require.Len(t, msgs, 2)
	require.Equal(t, "Your order o-17 is on its way", msgs[0].Subject)
	require.Contains(t, msgs[0].Body, "DHL tracking number JD0123")
	require.Contains(t, msgs[0].Body, "attempt 1")
	require.Equal(t, "How did your delivery go?", msgs[1].Subject)
}

// The same event posted twice makes one notice: the task's key is the
// shipment, and the queue refuses a key it saw within its de-duplication
// window.
func TestWebhookDeduplicatesByShipment(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	// No feedback delay: the clock would jump three days, past the window.
	k, url := start(t, svc, plbatest.Set("queue.memory.dedup_window=1h", "shipments.feedback_after=0s"))
	first := time.Now()
	code, _ := postSigned(t, url, event, shipments.Sign(secret, first, []byte(event)))
	require.Equal(t, http.StatusAccepted, code)
	k.RunUntilIdle()
	// The warehouse posts the event again, signed anew: a timestamp one
	// second earlier than the first, so never the same signature (the
	// timestamp has whole seconds; "now minus a second" fell in the
	// first's second when the first post was sent late in one).
	code, _ = postSigned(t, url, event, shipments.Sign(secret, first.Add(-time.Second), []byte(event)))
	require.Equal(t, http.StatusAccepted, code, "a duplicate is accepted, and dropped")
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(shipments.Notice.Name()), 1)
	require.Len(t, svc.messages(), 2, "one notice, one feedback request")
	require.Len(t, k.Enqueued(shipments.Notice.Name()), 2, "both posts reached the producer")
}

func TestWebhookRejectsBadEvents(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	k, url := start(t, svc)
	for _, tc := range []struct{ body, want string }{
		{`{`, "unexpected EOF"},
		{`{"shipment":"s-1"}`, "missing order, email, carrier, tracking"},
		{`{"shipment":"s-1","order":"o","email":"not-an-address","carrier":"c","tracking":"t"}`, `email "not-an-address"`},
		{`{"shipment":"s-1","color":"red"}`, `unknown field "color"`},
		{event + `{"shipment":"s-2","order":"o-18","email":"bob@example.com","carrier":"DHL","tracking":"JD0124"}`, "one event per post"},
		{event + ` trailing`, "one event per post"},
		{`null`, "missing shipment"},
	} {
		code, body := post(t, url, tc.body)
		require.Equal(t, http.StatusBadRequest, code, tc.body)
		require.Contains(t, body, tc.want)
	}
	require.Empty(t, k.Enqueued(""))
}

// The notification service failing (503) is retried with back-off until
// it answers; refusing the message (422) dead-letters the notice with the
// service's answer as the reason.
func TestNotificationServiceFailures(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	k, url := start(t, svc, plbatest.Config("shipments:\n  feedback_after: 0s\n"))
	code, _ := post(t, url, event)
	require.Equal(t, http.StatusAccepted, code)
	k.RunUntilIdle()
	retried := k.Retried(shipments.Notice.Name())
	require.Len(t, retried, 2)
	require.ErrorContains(t, retried[0].Err, "503 Service Unavailable")
	require.Positive(t, retried[1].RetryIn)
	require.Len(t, k.Succeeded(shipments.Notice.Name()), 1)

	refusing := newNotifyService(t, http.StatusUnprocessableEntity)
	k, url = start(t, refusing)
	code, _ = post(t, url, event)
	require.Equal(t, http.StatusAccepted, code)
	k.RunUntilIdle()
	dead := k.DeadLettered(shipments.Notice.Name())
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "422 Unprocessable Entity: refused by the test")
	require.Empty(t, k.Enqueued(shipments.Feedback.Name()), "no feedback for a notice never sent")
}

// The digest's schedule catches up the period that came before the start
// (then runs every period); its task is keyed by the schedule and the due
// time, so the backend keeps one per cluster; the digest reports the
// notices sent.
func TestScheduledDigest(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	// Not across an hour's turn: the start would catch up one hour and
	// the schedule emit the next.
	if d := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); d < 30*time.Second {
		time.Sleep(d + time.Second)
	}
	k, _ := start(t, svc, plbatest.Config("shipments:\n  digest:\n    enabled: true\n    every: 1h\n    to: ops@example.test\n"))
	es := k.WaitEnqueued(shipments.Digest.Name(), 1)
	require.Nil(t, es[0].By, "emitted by the source")
	hour := time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	require.Equal(t, "shipments/digest@"+hour, es[0].Task.Key)
	require.Equal(t, hour, es[0].Task.Header(source.HeaderScheduledAt))
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(shipments.Digest.Name()), 1)
	msgs := svc.messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "ops@example.test", msgs[0].To)
	// The due time ends the period the digest sums up: the notices sent
	// until then, since the digest before.
	require.Equal(t, "Shipping notices until "+hour, msgs[0].Subject)
	require.Contains(t, msgs[0].Body, "0 notice(s) sent")
}

// The webhook is a public route: with the admin server closed (a token
// configured), the warehouse reaches it without admin credentials, and its
// signature is what lets an event in.
func TestWebhookIsPublicAndSigned(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	k, url := start(t, svc, plbatest.Config("admin:\n  auth:\n    tokens:\n      - {name: ops, role: viewer, token: ops-token-0123456789abcdef}\n"))
	adminURL := strings.TrimSuffix(url, shipments.WebhookPath) + "/admin/v1/queues"
	resp, err := http.Get(adminURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the admin API is closed")

	for _, sig := range []string{"", shipments.Sign("another-secret-0123456", time.Now(), []byte(event)), "sha256=00"} {
		code, body := postSigned(t, url, event, sig)
		require.Equal(t, http.StatusUnauthorized, code, body)
		require.Contains(t, body, shipments.SignatureHeader)
	}
	require.Empty(t, k.Enqueued(""), "no unsigned event is queued")

	code, body := post(t, url, event)
	require.Equal(t, http.StatusAccepted, code, body)
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(shipments.Notice.Name()), 1)
}

// A signed request captured and posted again is refused once its signed
// timestamp is older than the tolerance (5m by default; a signature from
// the future likewise), and within it is answered as accepted without a
// second notice; shipments.webhook_tolerance sets the tolerance. Every
// refusal is a 401 that says why.
func TestWebhookRefusesReplays(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	k, url := start(t, svc)
	now := time.Now()
	for _, tc := range []struct{ sig, want string }{
		{shipments.Sign(secret, now.Add(-10*time.Minute), []byte(event)), "10m0s old, beyond 5m0s"},
		{shipments.Sign(secret, now.Add(10*time.Minute), []byte(event)), "ahead of the server's clock, beyond 5m0s"},
		{"sha256=" + strings.Repeat("0", 64), "malformed"},
	} {
		code, body := postSigned(t, url, event, tc.sig)
		require.Equal(t, http.StatusUnauthorized, code, body)
		require.Contains(t, body, tc.want)
		require.NotContains(t, body, secret)
	}
	require.Empty(t, k.Enqueued(""), "no stale event is queued")

	captured := shipments.Sign(secret, now.Add(-4*time.Minute), []byte(event))
	code, first := postSigned(t, url, event, captured)
	require.Equal(t, http.StatusAccepted, code, first)
	code, again := postSigned(t, url, event, captured)
	require.Equal(t, http.StatusAccepted, code, again)
	require.JSONEq(t, strings.Replace(first, "}", `,"duplicate":true}`, 1), again, "the same task, not queued again")
	require.Len(t, k.Enqueued(shipments.Notice.Name()), 1)

	k, url = start(t, svc, plbatest.Config("shipments:\n  webhook_tolerance: 30m\n"))
	code, body := postSigned(t, url, event, shipments.Sign(secret, now.Add(-10*time.Minute), []byte(event)))
	require.Equal(t, http.StatusAccepted, code, body)
	require.Len(t, k.Enqueued(shipments.Notice.Name()), 1)
}

// answer is the webhook's 202 body.
type answer struct {
	Task      string `json:"task"`
	Duplicate bool   `json:"duplicate"`
	Finished  string `json:"finished"`
}

func decodeAnswer(t *testing.T, body string) answer {
	t.Helper()
	var a answer
	require.NoError(t, json.Unmarshal([]byte(body), &a), body)
	return a
}

// An event signed anew and posted again while its shipment's notice waits
// for a retry is dropped by the queue: the answer says so and names the
// notice that holds the shipment, not a task that was never queued.
func TestWebhookDuplicateWhileQueuedNamesTheQueuedNotice(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t, http.StatusServiceUnavailable)
	// The retry waits an hour by the kit's clock: the notice is still
	// queued when the second post comes, however slow the machine.
	k, url := start(t, svc, plbatest.Set("shipments.feedback_after=0s",
		"workers.shipments.backoff.initial=1h", "workers.shipments.backoff.max=1h"))
	first := time.Now()
	code, body := postSigned(t, url, event, shipments.Sign(secret, first, []byte(event)))
	require.Equal(t, http.StatusAccepted, code, body)
	a1 := decodeAnswer(t, body)
	require.False(t, a1.Duplicate)
	require.Eventually(t, func() bool { return len(k.Retried(shipments.Notice.Name())) == 1 }, 30*time.Second, 5*time.Millisecond)

	code, body = postSigned(t, url, event, shipments.Sign(secret, first.Add(-time.Second), []byte(event)))
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, answer{Task: a1.Task, Duplicate: true}, decodeAnswer(t, body), "the notice queued first holds the shipment")
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(shipments.Notice.Name()), 1)
	for _, d := range k.Deliveries(shipments.Notice.Name()) {
		require.Equal(t, a1.Task, d.Task.ID, "only the first notice ran")
	}
}

// An event signed anew and posted again after its notice was sent, within
// the queue's window, is dropped: the answer says it is a duplicate whose
// notice succeeded, and names no task (none was queued).
func TestWebhookDuplicateAfterTheNoticeSaysItFinished(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	k, url := start(t, svc, plbatest.Set("queue.memory.dedup_window=1h", "shipments.feedback_after=0s"))
	first := time.Now()
	code, body := postSigned(t, url, event, shipments.Sign(secret, first, []byte(event)))
	require.Equal(t, http.StatusAccepted, code, body)
	k.RunUntilIdle()
	signed := shipments.Sign(secret, first.Add(-time.Second), []byte(event))
	code, body = postSigned(t, url, event, signed)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, answer{Duplicate: true, Finished: "succeeded"}, decodeAnswer(t, body))
	code, again := postSigned(t, url, event, signed)
	require.Equal(t, http.StatusAccepted, code, again)
	require.JSONEq(t, body, again, "the replay of the second post is answered as it was")
	k.RunUntilIdle()
	require.Len(t, k.Succeeded(shipments.Notice.Name()), 1)
}

// A queue without room (here: a capacity of one, taken by a notice whose
// service does not answer) is not waited on beyond
// shipments.webhook_enqueue_timeout: the warehouse gets a 503 to retry
// on, not a request that hangs until room comes, and nothing is queued.
func TestWebhookFullQueueAnswers503(t *testing.T) {
	t.Parallel()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client go
			<-r.Context().Done()               // until the notice's handler gives up (the kit stops)
		}
	}))
	t.Cleanup(svc.Close)
	// The stop cancels the notice that waits on the service at once.
	k, url := start(t, &notifyService{Server: svc}, plbatest.Set("queue.memory.capacity=1",
		"shipments.webhook_enqueue_timeout=200ms", "shipments.timeout=1m", "workers.shipments.drain_timeout=100ms"))
	code, body := post(t, url, event)
	require.Equal(t, http.StatusAccepted, code, body)

	second := strings.ReplaceAll(event, "s-1", "s-2")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(second))
	require.NoError(t, err)
	req.Header.Set(shipments.SignatureHeader, shipments.Sign(secret, time.Now(), []byte(second)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "the webhook did not answer while the queue was full")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(b))
	require.Contains(t, string(b), "not queued, try again")
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Len(t, k.Enqueued(shipments.Notice.Name()), 1, "only the first")
}

// With authentication on, the admin server records a public route's calls
// only as its handler records them (admin.Audit), so that posts nobody
// signed cannot push the operators' entries out of the audit. The webhook
// changes state (it queues notices): each event whose signature checked
// out is in the audit, with the shipment, the task and the result; the
// refused ones are not.
func TestSignedEventsAreAudited(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	const token = "ops-token-0123456789abcdef"
	_, url := start(t, svc, plbatest.Config("admin:\n  auth:\n    tokens:\n      - {name: ops, role: viewer, token: "+token+"}\n"))

	code, body := postSigned(t, url, event, "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = post(t, url, event)
	require.Equal(t, http.StatusAccepted, code, body)
	var a shipments.Answer
	require.NoError(t, json.Unmarshal([]byte(body), &a))
	code, body = post(t, url, `{"shipment":"s-2"}`)
	require.Equal(t, http.StatusBadRequest, code, body)

	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(url, shipments.WebhookPath)+admin.AuditPath, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var p admin.AuditPage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.Len(t, p.Entries, 2, "the signed events only, newest first: %+v", p.Entries)
	bad, ok := p.Entries[0], p.Entries[1]
	require.Equal(t, "shipment.event", ok.Action)
	require.Equal(t, "shipment/s-1", ok.Target)
	require.Equal(t, admin.AuditOK, ok.Result)
	require.Equal(t, http.StatusAccepted, ok.Status)
	require.Equal(t, a.Task, ok.Params["task"])
	require.Equal(t, "warehouse", ok.Identity)
	require.Equal(t, "shipment.event", bad.Action)
	require.Equal(t, admin.AuditFailed, bad.Result)
	require.Contains(t, bad.Error, "missing order")
}

// A body that is not UTF-8 is refused (400), nothing queued: decoded, each
// invalid byte would become U+FFFD, so that the shipments "s-\xff" and
// "s-\xfe" would share the key of "s-\uFFFD" and the second be answered
// as a duplicate of the first, its notice never sent.
func TestWebhookRefusesBodiesNotUTF8(t *testing.T) {
	t.Parallel()
	svc := newNotifyService(t)
	k, url := start(t, svc, plbatest.Set("queue.memory.dedup_window=1h"))
	for _, id := range []string{"s-\xff", "s-\xfe"} {
		code, body := post(t, url, strings.Replace(event, "s-1", id, 1))
		require.Equal(t, http.StatusBadRequest, code, body)
		require.Contains(t, body, "not UTF-8")
	}
	require.Empty(t, k.Enqueued(""))
}
