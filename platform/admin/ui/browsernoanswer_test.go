package ui_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestBrowserActionWithoutAnswerMayBeDone: an action whose answer the
// browser never got (the connection lost after the server acted) may
// have been done: the page says so and where to look, not only that the
// server did not answer, which an operator takes for "not done". The
// pool here was paused.
func TestBrowserActionWithoutAnswerMayBeDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b := newBrowser(t, e, 1280, 900)
	b.signIn(operatorName)
	pause := `button[aria-label="Pause pool ` + testQueue + `"]`
	b.run("pools", chromedp.Navigate(e.base+"/ui/pools"), chromedp.WaitVisible(chromedp.CSS(pause)))

	// The pause's answer is cut off once the server has given it.
	go func() {
		for ev, err := range chromedp.Events(b.ctx, fetch.RequestPaused) {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID,
				ErrorReason: network.ErrorReasonConnectionReset})
		}
	}()
	b.run("cut the pause's answer", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "*/ui/pools/" + testQueue + "/pause", RequestStage: fetch.RequestStageResponse}}})
		return err
	}))
	b.setAllow(func(msg string) bool {
		return strings.Contains(msg, "ERR_CONNECTION_RESET") || strings.Contains(msg, "htmx:sendError") || strings.Contains(msg, "htmx:afterRequest")
	})
	b.run("pause", chromedp.Click(chromedp.CSS(pause)), chromedp.WaitVisible(chromedp.CSS("#flash")))
	b.setAllow(nil)
	p, _ := e.rt.Pool(testQueue)
	require.True(t, p.Paused(), "the server did pause it")
	msg := b.text("#flash")
	require.Contains(t, msg, "may have been done", msg)
	require.Contains(t, msg, "audit", msg)
}

// TestBrowserProxyPageOfAnActionIsNotShownAsTheAnswer: a proxy in front
// of the admin server that gives up waiting answers an action with a 504
// page of its own, after the server acted. The page does not put the
// proxy's page in place of the pools' table (as the UI's own answer of a
// failed action would be); it says the action may have been done, and
// where to look.
func TestBrowserProxyPageOfAnActionIsNotShownAsTheAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b := newBrowser(t, e, 1280, 900)
	b.signIn(operatorName)
	pause := `button[aria-label="Pause pool ` + testQueue + `"]`
	b.run("pools", chromedp.Navigate(e.base+"/ui/pools"), chromedp.WaitVisible(chromedp.CSS(pause)))
	go func() {
		for ev, err := range chromedp.Events(b.ctx, fetch.RequestPaused) {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: 504,
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html"}},
				Body:            []byte(`<html><body><h1 id="proxy">504 Gateway Time-out</h1></body></html>`)})
		}
	}()
	b.run("the proxy's page for the pause", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "*/ui/pools/" + testQueue + "/pause", RequestStage: fetch.RequestStageResponse}}})
		return err
	}))
	b.setAllow(func(msg string) bool {
		return strings.Contains(msg, "504") || strings.Contains(msg, "htmx:responseError") || strings.Contains(msg, "htmx:afterRequest")
	})
	b.run("pause", chromedp.Click(chromedp.CSS(pause)), chromedp.WaitVisible(chromedp.CSS("#flash")))
	b.setAllow(nil)
	p, _ := e.rt.Pool(testQueue)
	require.True(t, p.Paused(), "the server did pause it")
	msg := b.text("#flash")
	require.Contains(t, msg, "504", msg)
	require.Contains(t, msg, "may have been done", msg)
	require.NotContains(t, msg, "<html>", "the proxy's page is not shown as text")
	require.Empty(t, b.text("#proxy"), "the proxy's page is not swapped in")
	require.NotEmpty(t, b.text("#pools-table"), "the pools' table stays")
}
