package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drill/drills/drilltest"

	"github.com/chromedp/chromedp"
)

func browser(t *testing.T) string { return drilltest.Browser(t) }

// outputDir is where screenshots go: $DRILL_TEST_OUTPUT or testoutput/ at
// the top of the repository.
func outputDir(t *testing.T) string {
	dir := os.Getenv("DRILL_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join("..", "testoutput")
	}
	dir = filepath.Join(dir, "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A person opens the overview, follows a drill to a run, presses Run now
// and sees the new run — in headless Chromium, with a screenshot of each page.
func TestBrowserOverviewToRunNow(t *testing.T) {
	exe := browser(t)
	b := setup(t, "")
	out := outputDir(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// The first Run starts the browser: it gets no timeout of its own.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(out, name+".png"), png, 0o644)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	do(chromedp.Navigate(b.server.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.drills")), shot("1-overview"))
	overview := text("table.drills tbody")
	do(chromedp.Click(chromedp.CSS(`a[href="/drills/orders"]`)), chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("2-drill"))
	drillTitle := text("h1")
	do(chromedp.Click(chromedp.CSS("table.runs tbody tr:first-child a")), chromedp.WaitVisible(chromedp.CSS("svg.timeline")), shot("3-run"))
	runTitle := text("h1")
	do(chromedp.Navigate(b.server.URL+"/drills/orders"), chromedp.WaitVisible(chromedp.ID("run-now")),
		chromedp.Click(chromedp.ID("run-now")), chromedp.WaitVisible(chromedp.CSS(".status.queued")), shot("4-after-run-now"))
	afterRunNow := text("h1")
	do(chromedp.Navigate(b.server.URL+"/drills/orders"), chromedp.WaitVisible(chromedp.CSS("table.runs")), shot("5-drill-after-run-now"))
	historyText := text("table.runs tbody tr:first-child")
	if !strings.Contains(overview, "billing") || !strings.Contains(strings.ToLower(overview), "overdue") || !strings.Contains(overview, "failed") || !strings.Contains(overview, `<script>alert`) {
		t.Errorf("overview text: %q", overview)
	}
	if strings.TrimSpace(drillTitle) != "orders" {
		t.Errorf("drill page title %q", drillTitle)
	}
	if !strings.Contains(runTitle, "Run "+itoa(b.ids["orders"])+" of orders") {
		t.Errorf("run page title %q", runTitle)
	}
	if !strings.Contains(afterRunNow, "of orders") || !strings.Contains(afterRunNow, "queued") {
		t.Errorf("after Run now: %q", afterRunNow)
	}
	newID := strings.Fields(afterRunNow)[1]
	if !strings.HasPrefix(historyText, newID) || !strings.Contains(historyText, "queued") {
		t.Errorf("the new run %s is not first in the history: %q", newID, historyText)
	}
	t.Logf("screenshots in %s", out)
}

// At 390 px (a phone) nothing is cut off: the overview's and a run's
// cells all lie within the screen, and no page scrolls sideways.
func TestBrowserPhoneLayout(t *testing.T) {
	exe := browser(t)
	b := setup(t, "")
	out := outputDir(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(390, 844))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	// Cells whose right edge is past the viewport, and the page's overflow.
	const cutOff = `(() => {
		const w = document.documentElement.clientWidth;
		const cells = [...document.querySelectorAll('td, th')].filter(e => e.offsetParent !== null && !e.closest('table:not(.drills):not(.checks):not(.facts)'));
		const cut = cells.filter(e => e.getBoundingClientRect().right > w + 1).map(e => e.textContent.trim().slice(0, 30));
		return {width: w, scroll: document.documentElement.scrollWidth, cut: cut};
	})()`
	type layout struct {
		Width  int      `json:"width"`
		Scroll int      `json:"scroll"`
		Cut    []string `json:"cut"`
	}
	for _, page := range []string{"/", fmt.Sprintf("/runs/%d", b.ids["billing"]), fmt.Sprintf("/runs/%d", b.ids["orders"])} {
		err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1)),
			chromedp.Navigate(b.server.URL+page), chromedp.WaitVisible(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[layout](cutOff))
		if err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			_ = os.WriteFile(filepath.Join(out, "phone"+strings.ReplaceAll(page, "/", "-")+".png"), png, 0o644)
		}
		if got.Width > 400 || got.Width < 300 {
			t.Fatalf("%s: viewport %d px wide, want 390", page, got.Width)
		}
		if len(got.Cut) > 0 || got.Scroll > got.Width+1 {
			t.Errorf("%s at %d px: page %d px wide, cells cut off: %q", page, got.Width, got.Scroll, got.Cut)
		}
	}
}
