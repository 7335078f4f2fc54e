package shipments

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries an event's signature, as Stripe's webhooks
// do: "t=<unix seconds>,v1=<hex>", where the hex is the HMAC-SHA256 under
// Config.WebhookSecret of the timestamp, a dot and the body ("<t>.<body>").
// The timestamp is signed with the body, so a captured request cannot be
// replayed once it is older than Config.WebhookTolerance. v1 may appear
// more than once (a sender rotating its secret signs with both); other
// keys are ignored.
const SignatureHeader = "Shipments-Signature"

// The reasons an event's signature is refused (401), wrapped with the
// details by VerifySignature.
var (
	ErrNoSignature        = errors.New("missing " + SignatureHeader + " header")
	ErrMalformedSignature = errors.New(SignatureHeader + ` header malformed: want "t=<unix seconds>,v1=<hex HMAC-SHA256 of <t>.<body>>"`)
	ErrSignatureMismatch  = errors.New(SignatureHeader + ": no v1 signature matches the timestamp and body (a wrong secret, or a changed timestamp or body)")
	ErrStaleSignature     = errors.New(SignatureHeader + ": timestamp outside the tolerance")
)

// Sign returns the SignatureHeader value of body sent at t under secret.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// mac is the HMAC-SHA256 under secret of "<ts>.<body>".
func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks the SignatureHeader value header of body under
// secret: one of its v1 signatures must be the body's and its timestamp's
// (compared in constant time), and the timestamp at most tolerance from
// now, before or after. The error wraps ErrNoSignature,
// ErrMalformedSignature, ErrSignatureMismatch or ErrStaleSignature, and
// holds neither the secret nor the expected signature.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	_, _, err := verify(secret, header, body, now, tolerance)
	return err
}

// verify is VerifySignature; it returns the signature that matched and
// the time the event was signed.
func verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) ([]byte, time.Time, error) {
	if strings.TrimSpace(header) == "" {
		return nil, time.Time{}, ErrNoSignature
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, time.Time{}, ErrMalformedSignature
		}
		switch k {
		case "t":
			if ts != "" {
				return nil, time.Time{}, fmt.Errorf("%w (two timestamps)", ErrMalformedSignature)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return nil, time.Time{}, fmt.Errorf("%w (a v1 that is not 64 hex digits)", ErrMalformedSignature)
			}
			sigs = append(sigs, b)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix <= 0 || len(sigs) == 0 {
		return nil, time.Time{}, ErrMalformedSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, sig := range sigs { // every one, no early exit
		if hmac.Equal(sig, want) {
			ok = true
		}
	}
	if !ok {
		return nil, time.Time{}, ErrSignatureMismatch
	}
	sent := time.Unix(unix, 0)
	if age := now.Sub(sent); age > tolerance || age < -tolerance {
		when := "old"
		if age < 0 {
			age, when = -age, "ahead of the server's clock"
		}
		return nil, time.Time{}, fmt.Errorf("%w: signed at %s, %s %s, beyond %s (a replayed request, or the sender's clock is off)",
			ErrStaleSignature, sent.UTC().Format(time.RFC3339), age.Truncate(time.Second), when, tolerance)
	}
	return want, sent, nil
}
