package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// ExitDenied is the exit status of a `ctl` command the admin server
// refused: no or wrong credentials (401), a role too weak (403), or an
// address rate-limited after too many wrong tokens (429, whatever the
// token: the call is not done).
const ExitDenied = 3

// CtlTokenEnv is the environment variable `ctl` takes its bearer token
// from (--token-file wins).
const CtlTokenEnv = "PLBA_CTL_TOKEN"

// ctlClient calls the admin API for `ctl`.
type ctlClient struct {
	base    string
	token   string
	timeout time.Duration
	http    *http.Client
}

// ctlError is a failed call, with the exit status it means.
type ctlError struct {
	code int // ExitFailure or ExitDenied
	msg  string
}

func (e *ctlError) Error() string { return e.msg }

// newCtlClient reads the token (file first, then the environment) and
// the certificate authorities of f.caFile.
func newCtlClient(f *ctlFlags) (*ctlClient, error) {
	url, tokenFile, timeout := f.url, f.tokenFile, f.timeout
	c := &ctlClient{base: strings.TrimRight(url, "/"), timeout: timeout, http: &http.Client{Timeout: timeout,
		// A redirect is answered as it is (do fails naming it): followed, a
		// POST or PUT would come back as a GET whose 200 reads as done,
		// and the token would go where the redirect points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	switch {
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
		if c.token == "" {
			return nil, fmt.Errorf("--token-file %s is empty", tokenFile)
		}
	default:
		c.token = strings.TrimSpace(os.Getenv(CtlTokenEnv))
	}
	if !strings.HasPrefix(c.base, "http://") && !strings.HasPrefix(c.base, "https://") {
		return nil, fmt.Errorf("--url %q: want http://host:port or https://host:port", url)
	}
	if f.caFile != "" {
		if !strings.HasPrefix(c.base, "https://") {
			return nil, fmt.Errorf("--ca-file is for an https:// --url (got %q)", url)
		}
		roots, err := caPool(f.caFile)
		if err != nil {
			return nil, err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		c.http.Transport = tr
	}
	return c, nil
}

// caPool returns the system's certificate authorities with those of the
// PEM file path added.
func caPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", path)
	}
	return roots, nil
}

// do calls method path with body (JSON, nil for none) and decodes a 2xx
// answer into out (nil: discard). It returns the raw body as well. A
// redirect is not followed: it is a failure naming where it points.
func (c *ctlClient) do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, &ctlError{code: ExitFailure, msg: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	var sent atomic.Bool // the request's headers were written: the server may have it
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteHeaders: func() { sent.Store(true) },
	}))
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &ctlError{code: ExitFailure, msg: fmt.Sprintf("%s %s: %v%s", method, path, err, unknownOutcome(method, sent.Load(), err))}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &ctlError{code: ExitFailure, msg: fmt.Sprintf("%s %s: read answer: %v%s", method, path, err, unknownOutcome(method, true, err))}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		apiErr := json.Unmarshal(raw, &e) == nil && e.Error != ""
		if apiErr {
			msg = e.Error
		} else if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout {
			// A proxy's answer, not the API's: it gave up waiting or lost
			// the answer, and the server may have done the call.
			msg += unknownOutcome(method, true, nil)
		}
		if resp.StatusCode/100 == 3 {
			msg = "the server redirects to " + resp.Header.Get("Location") +
				": not followed, the call is not done; give --url the admin server's own address"
		}
		code := ExitFailure
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
			code = ExitDenied
			if c.token == "" && resp.StatusCode == http.StatusUnauthorized {
				msg += " (no token: set " + CtlTokenEnv + " or --token-file)"
			}
		}
		return raw, &ctlError{code: code, msg: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, msg)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, &ctlError{code: ExitFailure, msg: fmt.Sprintf("%s %s: decode answer: %v", method, path, err)}
		}
	}
	return raw, nil
}

// unknownOutcome is what an error of a call with method adds: for a
// call that changes state and reached the server (its request was
// written, sent: a timeout, a connection lost), that the server may have
// done it. One that never got that far (no connection, a TLS handshake
// that failed) did nothing. The server audits what it did either way.
func unknownOutcome(method string, sent bool, err error) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ""
	}
	var op *net.OpError
	if !sent || (errors.As(err, &op) && op.Op == "dial") {
		return "" // never sent
	}
	return " (no answer: the server may have done it or not; `host ctl audit` shows what it did)"
}

// exitOf is the exit status of err from a ctl command.
func exitOf(err error) int {
	var ce *ctlError
	if errors.As(err, &ce) {
		return ce.code
	}
	return ExitFailure
}
