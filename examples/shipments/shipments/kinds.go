package shipments

import "github.com/plba/plba/platform/task"

// Queue is the queue every task of the application lives on.
const Queue = "shipments"

// NoticeArgs is a shipping notice to send to a customer.
type NoticeArgs struct {
	Shipment string `json:"shipment"`
	Order    string `json:"order"`
	Email    string `json:"email"`
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// FeedbackArgs asks a customer about a delivered shipment.
type FeedbackArgs struct {
	Shipment string `json:"shipment"`
	Email    string `json:"email"`
}

// DigestArgs is the summary for one period.
type DigestArgs struct {
	// Period is the digest's due time, RFC 3339: the end of the period
	// it sums up (the notices sent since the digest before).
	Period string `json:"period"`
}

// The application's task kinds.
var (
	// Notice sends the shipping notice; the webhook enqueues it.
	Notice = task.Define[NoticeArgs]("shipments.notice", task.Queue(Queue), task.MaxAttempts(8))
	// Feedback asks for feedback; the notice's handler enqueues it,
	// Config.FeedbackAfter later.
	Feedback = task.Define[FeedbackArgs]("shipments.feedback", task.Queue(Queue))
	// Digest sends the periodic summary; the digest source emits it.
	Digest = task.Define[DigestArgs]("shipments.digest", task.Queue(Queue), task.MaxAttempts(3))
)
