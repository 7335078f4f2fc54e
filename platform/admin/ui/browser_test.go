package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromium is Debian's Chromium, which the browser tests drive.
const chromium = "/usr/bin/chromium"

// stepTimeout bounds one step of a scenario.
const stepTimeout = 30 * time.Second

// browser is one headless Chromium with a fresh profile, on one page of
// the UI. It records the page's JavaScript errors (console errors,
// uncaught exceptions, the browser's own error log: CSP violations,
// failed loads) and every request to a host other than the admin
// server's: each one fails the test, unless allowed.
type browser struct {
	t    *testing.T
	e    *env
	ctx  context.Context
	dir  string // screenshots
	mu   sync.Mutex
	errs []string
	// allow, when set, lets an error through (a forged request's 403);
	// guarded by mu (setAllow).
	allow func(msg string) bool
}

// setAllow lets the errors f accepts through (nil: none).
func (b *browser) setAllow(f func(msg string) bool) {
	b.mu.Lock()
	b.allow = f
	b.mu.Unlock()
}

// newBrowser starts Chromium for t (skipped unless PLBA_TEST_BROWSER=1)
// with the flags a machine without network needs, at width×height.
func newBrowser(t *testing.T, e *env, width, height int) *browser {
	t.Helper()
	if os.Getenv("PLBA_TEST_BROWSER") == "" {
		t.Skip("browser tests: set PLBA_TEST_BROWSER=1 (needs Debian's chromium at " + chromium + ")")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("PLBA_TEST_BROWSER is set but %s is missing (apt-get install -y chromium): %v", chromium, err)
	}
	// Screenshots outlive a failed test (and are removed after a passed
	// one), or go to PLBA_TEST_SCREENSHOTS and stay.
	keep := os.Getenv("PLBA_TEST_SCREENSHOTS")
	dir, err := os.MkdirTemp(keep, "plba-ui-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if keep != "" {
			t.Logf("screenshots are in %s", dir)
			return
		}
		if t.Failed() {
			t.Logf("screenshots of the failed scenario are in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 4*time.Minute)
	b := &browser{t: t, e: e, ctx: ctx, dir: dir}

	host := strings.TrimPrefix(e.base, "http://")
	// Both subscriptions start the browser; their goroutines end with ctx.
	msgs := chromedp.Console(ctx)
	reqs := chromedp.Events(ctx, network.RequestWillBeSent)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.fail(m.String() + " " + m.URL)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range reqs {
			if err != nil {
				return
			}
			u, perr := url.Parse(ev.Request.URL)
			if perr == nil && u.Scheme != "data" && u.Scheme != "about" && u.Host != host {
				b.fail("request to another host: " + ev.Request.URL)
			}
		}
	}()
	t.Cleanup(func() {
		cancelTime()
		cancelCtx()
		cancelAlloc()
		wg.Wait()
	})
	if width < 800 {
		b.run("phone viewport", chromedp.EmulateViewport(int64(width), int64(height), chromedp.EmulateMobile))
	}
	return b
}

func (b *browser) fail(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.allow != nil && b.allow(msg) {
		return
	}
	b.errs = append(b.errs, msg)
}

// run runs actions; on failure it saves a screenshot and says where.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v (screenshot in %s)", what, err, b.dir)
	}
	b.check(what)
}

// check fails the test for any JavaScript error or foreign request so far.
func (b *browser) check(what string) {
	b.t.Helper()
	b.mu.Lock()
	errs := b.errs
	b.errs = nil
	b.mu.Unlock()
	if len(errs) > 0 {
		b.shot("errors-" + what)
		b.t.Fatalf("%s: the page logged errors or left the server (screenshot in %s):\n%s", what, b.dir, strings.Join(errs, "\n"))
	}
}

// shot saves a screenshot of the whole page as name.png.
func (b *browser) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// signIn signs in through the form.
func (b *browser) signIn(name string) {
	b.t.Helper()
	b.run("sign in as "+name,
		chromedp.Navigate(b.e.base+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")),
	)
	require.Contains(b.t, get(b, "who am I", chromedp.Text(chromedp.CSS("#whoami"))), name)
}

// text returns the text of the first node sel matches ("" when none).
// It reads in the page, in one go: htmx may replace the node at any
// moment, and a node looked up first and read after would be gone.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(get(b, "read "+sel, textOf(sel)))
}

func textOf(sel string) chromedp.Action[string] {
	q, _ := json.Marshal(sel)
	return chromedp.Evaluate[string](`(function(){ var n = document.querySelector(` + string(q) + `); return n ? n.innerText : ""; })()`)
}

// waitText waits until the first node sel matches says want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		s, err := chromedp.Run(ctx, textOf(sel))
		cancel()
		if err == nil && strings.TrimSpace(s) == want {
			b.check("wait for " + sel)
			return
		}
		if time.Now().After(deadline) {
			b.shot("timeout-" + strings.Trim(sel, "#."))
			b.t.Fatalf("%s: want %q, last %q (err %v) (screenshot in %s)", sel, want, s, err, b.dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settledIn selects sel inside target once htmx has settled the swap
// that put it there. htmx binds the hx- attributes of swapped-in content
// when it settles the swap (settleDelay after it: 20 ms, longer on a
// loaded machine), and marks target htmx-settling until then: a button
// clicked while it is visible but not yet bound submits its form without
// htmx, as a browser without scripts does (a page of its own, not the
// fragment in place).
func settledIn(target, sel string) string {
	return target + ":not(.htmx-settling) " + sel
}

// mark sets a value on the page's window: still there later, the page
// was not reloaded (the counts came through htmx).
func (b *browser) mark() chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`window.plbaMark = 42; undefined`)
}

func (b *browser) marked() bool {
	return get(b, "read mark", chromedp.Evaluate[bool](`window.plbaMark === 42`))
}

// get runs an action that returns a value; on failure it saves a
// screenshot and says where.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v (screenshot in %s)", what, err, b.dir)
	}
	b.check(what)
	return v
}

// TestBrowserOperator: an operator signs in, watches a queue's counts
// change while tasks run (without reloading the page), opens a dead
// letter, re-drives it with the confirmation and sees it succeed,
// pauses a pool and sees its state and the queue's depth grow, resumes
// it, and signs out.
func TestBrowserOperator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b := newBrowser(t, e, 1280, 900)
	b.signIn(operatorName)
	b.shot("1-overview")

	// Counts change while tasks run.
	e.delay.Store(int64(time.Second)) // 10 tasks on 2 workers: 5 s, more than one refresh
	b.run("open the queue", chromedp.Navigate(e.base+"/ui/queues/"+testQueue), chromedp.WaitVisible(chromedp.CSS("#queue-counts")), b.mark())
	b.waitText("#queue-counts .depth", "0")
	e.enqueue(10)
	deadline := time.Now().Add(20 * time.Second)
	seen := false
	for !seen && time.Now().Before(deadline) {
		d := b.text("#queue-counts .depth")
		f := b.text("#queue-counts .inflight")
		seen = d != "0" || f != "0"
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, seen, "the counts showed the tasks waiting or running")
	b.shot("2-counts-busy")
	b.waitText("#queue-counts .depth", "0")
	b.waitText("#queue-counts .inflight", "0")
	require.True(t, b.marked(), "the counts changed without a reload")
	e.delay.Store(0)

	// A dead letter: open it, re-drive it with the confirmation.
	e.fail.Store(true)
	ids := e.enqueue(1)
	eventually(t, "a dead letter", func() bool { return e.dead() == 1 })
	b.run("the dead letter in the list", chromedp.Navigate(e.base+"/ui/queues/"+testQueue),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="/dead/`+ids[0]+`"]`)))
	b.run("open the dead letter", chromedp.Click(chromedp.CSS(`a[href$="/dead/`+ids[0]+`"]`)), chromedp.WaitVisible(chromedp.CSS("#payload")))
	require.Equal(t, "upstream refused the order", b.text("#reason"))
	require.Contains(t, b.text("#payload"), `"order": {`)
	b.shot("3-dead-letter")
	b.run("ask to re-drive", chromedp.Click(chromedp.CSS(`button[value="redrive"]`)),
		chromedp.WaitVisible(chromedp.CSS(settledIn("#confirm", "#confirm-yes"))))
	require.Contains(t, b.text("#confirm-text"), "Re-drive 1 dead letter")
	require.Equal(t, int64(1), e.dead(), "the confirmation did nothing yet")
	b.shot("4-confirm")
	e.fail.Store(false)
	b.run("confirm", chromedp.Click(chromedp.CSS("#confirm-yes")), chromedp.WaitVisible(chromedp.CSS("#result-text")))
	require.Equal(t, "Re-drove 1 of 1 dead letter.", b.text("#result-text"))
	eventually(t, "the re-driven task succeeded", func() bool {
		p, _ := e.rt.Pool(testQueue)
		return e.dead() == 0 && p.Stats().Succeeded == 11
	})
	b.shot("5-redriven")

	// Pause the pool: its state, and the queue's depth grows.
	b.run("pools", chromedp.Navigate(e.base+"/ui/pools"), chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Pause pool `+testQueue+`"]`)))
	b.run("pause", chromedp.Click(chromedp.CSS(`button[aria-label="Pause pool `+testQueue+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Resume pool `+testQueue+`"]`)))
	b.waitText(`tr[data-pool="`+testQueue+`"] .state`, "paused")
	e.enqueue(4)
	b.run("queues", chromedp.Navigate(e.base+"/ui/queues"), chromedp.WaitVisible(chromedp.CSS("#queues-table")))
	b.waitText(`tr[data-queue="`+testQueue+`"] .depth`, "4")
	b.shot("6-paused-depth")
	b.run("pools again", chromedp.Navigate(e.base+"/ui/pools"),
		chromedp.Click(chromedp.CSS(`button[aria-label="Resume pool `+testQueue+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Pause pool `+testQueue+`"]`)))
	b.waitText(`tr[data-pool="`+testQueue+`"] .state`, "running")
	b.run("queues after resume", chromedp.Navigate(e.base+"/ui/queues"), chromedp.WaitVisible(chromedp.CSS("#queues-table")))
	b.waitText(`tr[data-queue="`+testQueue+`"] .depth`, "0")

	// Sign out.
	b.run("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#signin")))
	loc := get(b, "where", chromedp.Location())
	require.True(t, strings.HasSuffix(loc, "/ui/signin"), loc)
	b.run("signed out", chromedp.Navigate(e.base+"/ui/queues"), chromedp.WaitVisible(chromedp.CSS("#signin")))
	b.shot("7-signed-out")
}

// TestBrowserViewer: a viewer finds no action button anywhere, and an
// action request forged from its page (with its session's valid CSRF
// token) gets 403 and changes nothing.
func TestBrowserViewer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(1)
	eventually(t, "a dead letter", func() bool { return e.dead() == 1 })
	b := newBrowser(t, e, 1280, 900)
	b.signIn(viewerName)
	for _, p := range append(append([]string(nil), pages...), "/ui/queues/"+testQueue+"/dead/"+ids[0]) {
		b.run("open "+p, chromedp.Navigate(e.base+p), chromedp.WaitVisible(chromedp.CSS("#whoami")))
		nodes := get(b, "actions on "+p, chromedp.Nodes(chromedp.CSSAll("button.act, [hx-post], input[type=checkbox]"), chromedp.AtLeast(0)))
		require.Empty(t, nodes, "%s: a viewer sees no action", p)
	}
	b.shot("viewer-dead-letter")
	b.setAllow(func(msg string) bool { return strings.Contains(msg, "403") })
	forge := `fetch("/ui/pools/` + testQueue + `/pause", {method: "POST", headers: {"HX-Request": "true",
		"X-CSRF-Token": JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]}}).then(r => r.status)`
	status := get(b, "forge a pause", chromedp.Evaluate[int](forge, chromedp.EvalAwaitPromise))
	require.Equal(t, 403, status)
	b.setAllow(nil)
	p, _ := e.rt.Pool(testQueue)
	require.False(t, p.Paused())
}

// TestBrowserPhoneWidth: at phone width (390 px) the pages fit the
// screen: nothing but a table's own scroller is wider than the window.
func TestBrowserPhoneWidth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	e.enqueue(2)
	eventually(t, "dead letters", func() bool { return e.dead() == 2 })
	b := newBrowser(t, e, 390, 844)
	b.signIn(operatorName)
	for i, p := range []string{"/ui/", "/ui/queues", "/ui/queues/" + testQueue, "/ui/pools", "/ui/sources", "/ui/audit"} {
		b.run("open "+p, chromedp.Navigate(e.base+p), chromedp.WaitVisible(chromedp.CSS("#main")))
		widths := get(b, "widths of "+p, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		b.shot(fmt.Sprintf("phone-%d", i))
		require.Len(t, widths, 2)
		require.LessOrEqual(t, widths[0], widths[1], "%s is no wider than the phone's screen", p)
	}
}

// TestBrowserStoppedRedrive: a re-drive the API stops midway (the
// backend failed, and what it did could not be checked) shows its result
// in place of the confirmation, saying how many are unknown and why, and
// the list reloads: the dead letters the backend did move are gone from
// it.
func TestBrowserStoppedRedrive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(2)
	eventually(t, "two dead letters", func() bool { return e.dead() == 2 })
	e.fail.Store(false)
	b := newBrowser(t, e, 1280, 900)
	b.signIn(operatorName)
	b.run("the queue", chromedp.Navigate(e.base+"/ui/queues/"+testQueue), chromedp.WaitVisible(chromedp.CSS(`input[value="`+ids[1]+`"]`)))
	b.run("ask to re-drive both", chromedp.Click(chromedp.CSS("#select-all")), chromedp.Click(chromedp.CSS("#redrive-selected")),
		chromedp.WaitVisible(chromedp.CSS(settledIn("#confirm", "#confirm-yes"))))
	require.Equal(t, "Yes, re-drive 2", b.text("#confirm-yes"))
	b.setAllow(func(msg string) bool { return strings.Contains(msg, "500") })
	e.api.broken.Store(true)
	b.run("confirm", b.mark(), chromedp.Click(chromedp.CSS("#confirm-yes")), chromedp.WaitVisible(chromedp.CSS("#result-text")))
	e.api.broken.Store(false)
	b.shot("stopped")
	require.True(t, b.marked(), "the result is in place of the confirmation (htmx), not a page of its own")
	require.Equal(t, "Re-drove 0 of 2 dead letters, then stopped.", b.text("#result-text"))
	require.Contains(t, b.text("#result-unknown"), "2 unknown")
	require.Contains(t, b.text("#result-error"), errConnectionLost.Error())
	require.Empty(t, b.text("#confirm-yes"), "the confirmation is gone")
	eventually(t, "the backend did re-drive both", func() bool { return e.dead() == 0 })
	b.waitText("#dead-table tbody", "No dead letters.")
	b.setAllow(nil)
}
