package shipments

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/plba/plba/platform/task"
)

// Message is what the notification service receives.
type Message struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// Notifier is the client of the notification service.
type Notifier struct {
	url    string
	health string
	client *http.Client
}

// NewNotifier returns the client for cfg (it opens nothing).
func NewNotifier(cfg Config) *Notifier {
	health := cfg.HealthURL
	if health == "" {
		health = cfg.NotifyURL
	}
	return &Notifier{url: cfg.NotifyURL, health: health, client: &http.Client{Timeout: cfg.Timeout}}
}

// Send posts m. It returns an error the task runtime understands: a
// refusal (4xx) is permanent, 429 is retried after the delay the service
// asks for, anything else (5xx, no answer) is retried with back-off.
func (n *Notifier) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return task.Permanent(fmt.Errorf("notify: encode message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return task.Permanent(fmt.Errorf("notify: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := time.Minute
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return task.RetryAfter(wait, fmt.Errorf("notify: %s", resp.Status))
	case resp.StatusCode < 500:
		return task.Permanent(fmt.Errorf("notify: %s: %s", resp.Status, bytes.TrimSpace(text)))
	default:
		return fmt.Errorf("notify: %s: %s", resp.Status, bytes.TrimSpace(text))
	}
}

// Check reports whether the notification service answers.
func (n *Notifier) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.health, nil)
	if err != nil {
		return err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("notification service: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("notification service: %s", resp.Status)
	}
	return nil
}
