package ui_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestBrowserTimesSayTheirZone: a time app.js shows in the browser's zone
// names that zone (the server's fallback says UTC; the browser's local
// time without its zone would pass for it): in New York the overview's
// start time says EST (or EDT), and its title keeps the instant in UTC.
func TestBrowserTimesSayTheirZone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b := newBrowser(t, e, 1280, 900)
	b.run("the browser in New York", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "America/New_York"})
		return err
	}))
	b.signIn(operatorName)
	b.run("overview", chromedp.Navigate(e.base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("time[datetime]")))
	shown := b.text("time[datetime]")
	require.Regexp(t, regexp.MustCompile(`\b(EST|EDT|GMT-[45])\b`), shown, "the time names the browser's zone")
	require.NotContains(t, shown, "UTC", "app.js replaced the server's UTC text")
	title := get(b, "title of the time", chromedp.Evaluate[string](`document.querySelector("time[datetime]").title`))
	require.Regexp(t, `Z$`, title, "the title is the instant in UTC")
}
