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
