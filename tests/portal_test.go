package tests

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/api"
	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/devstack"
)

// chromiumPath finds Debian's chromium; without it the test is skipped,
// and fails under CI=true, where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium): .ci/run installs it")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// TestPortalInARealBrowser drives the portal (/portal/) in headless
// Chromium against garo dev: an admin signs in by keyboard (every field
// labelled, text of WCAG AA contrast), sees the API's validation
// message beside the field of a bad value, creates a pool, watches runners
// appear and the queue drain as jobs run, without reloading; a reader sees
// the pools but no admin control; axe-core finds no WCAG 2.1 A or AA
// violation on either page; the usage figures agree with the API's,
// and an agent that leaves shows its drain's progress. With
// GARO_RECORD_SCREENSHOTS=1 each page is saved to docs/images.
func TestPortalInARealBrowser(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	dir := t.TempDir()
	_, info := startDev(t, dir, "--no-demo")
	ctx := context.Background()
	reader, err := apiclient.New(info.API, info.AdminToken).CreateToken(ctx, "portal-reader", "reader")
	require.NoError(t, err)

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1200, 1100))...)
	defer cancelAlloc()
	b := newBrowser(t, alloc)
	shots := screenshots(t)

	b.do(chromedp.Navigate(info.API+"/portal/"), chromedp.WaitVisible(chromedp.ID("token")))
	shots.take(b, "portal-sign-in")
	// By keyboard: the page puts the focus in the token field, Enter signs in.
	b.do(chromedp.SendKeys(chromedp.ID("token"), info.AdminToken+"\r"), chromedp.WaitVisible(chromedp.ID("editor")))
	assert.Equal(t, "Signed in as admin", b.text(chromedp.Text(chromedp.ID("who"))))
	unlabelled, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](
		`[...document.querySelectorAll("input, select")].filter(i => i.labels.length === 0).length`))
	require.NoError(t, err)
	assert.Zero(t, unlabelled, "every field has its label")

	b.do(chromedp.SetValue(chromedp.ID("f-repository"), "e2e/portal"), chromedp.SetValue(chromedp.ID("f-agent"), info.Agent),
		chromedp.SetValue(chromedp.ID("f-maxRunners"), "0"), chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(`//span[@id="e-maxRunners"][normalize-space()!=""]`))
	shots.take(b, "portal-validation")
	assert.Contains(t, b.text(chromedp.Text(chromedp.ID("e-maxRunners"))), "maxRunners must be at least 1", "the API's message, beside its field")

	b.do(chromedp.SetValue(chromedp.ID("f-maxRunners"), "2"), chromedp.SetValue(chromedp.ID("f-hourlyPrice"), "3.6"),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.CSS(`div.pool[data-pool="e2e/portal/default"]`)))
	jobs := `{"repo":"e2e/portal","labels":["self-hosted","linux"],"durationMs":4000,"count":4,"name":"build"}`
	resp, err := http.Post(info.GitHubSim+"/_sim/jobs", "application/json", strings.NewReader(jobs))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	// Without reloading: the page refreshes itself.
	b.do(chromedp.WaitVisible(chromedp.CSS(`div.pool[data-pool="e2e/portal/default"] tr.runner`)))
	shots.take(b, "portal-runners")
	worst, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](contrastScript))
	require.NoError(t, err)
	ratio, what, _ := strings.Cut(worst, "|")
	lowest, err := strconv.ParseFloat(ratio, 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, lowest, 4.5, "text contrast of at least WCAG AA's 4.5:1; the lowest is %s", what)
	b.do(chromedp.WaitVisible(`//div[@data-pool="e2e/portal/default"]/p[contains(., "Jobs done: 4.")]`),
		chromedp.WaitVisible(chromedp.CSS("tr.agent")))
	shots.take(b, "portal-drained")
	assert.Contains(t, b.text(chromedp.Text(chromedp.CSS(`div.pool[data-pool="e2e/portal/default"]`))), "Queued: 0.", "the queue drained")
	readUsage(t, b, info)
	shots.take(b, "portal-usage")
	assert.Empty(t, axeViolations(t, b), "axe finds no WCAG 2.1 A or AA violation on the admin's page")

	// Signed out, then in again with a reader's token.
	r := b
	r.do(chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), reader.Token), chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`div.pool[data-pool="e2e/portal/default"]`)))
	shots.take(r, "portal-reader")
	assert.Equal(t, "Signed in as reader", r.text(chromedp.Text(chromedp.ID("who"))))
	hidden, err := chromedp.Run(r.ctx, chromedp.Evaluate[bool](`document.getElementById("editor").hidden`))
	require.NoError(t, err)
	assert.True(t, hidden, "a reader gets no pool form")
	deletes, err := chromedp.Run(r.ctx, chromedp.Evaluate[int](
		`[...document.querySelectorAll("button")].filter(b => b.textContent.startsWith("Delete")).length`))
	require.NoError(t, err)
	assert.Zero(t, deletes, "nor a delete button")
	assert.Empty(t, axeViolations(t, r), "nor on the reader's")

	r.do(chromedp.Click(chromedp.ID("signout")), chromedp.SendKeys(chromedp.ID("token"), "garo_not_a_token"),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("alert")))
	assert.Contains(t, r.text(chromedp.Text(chromedp.ID("alert"))), "token was refused", "a 401 reads as a message, not a blank page")

	// An agent that leaves shows how much of its pools is left to drain.
	r.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("token").value = ""`),
		chromedp.SendKeys(chromedp.ID("token"), info.AdminToken+"\r"),
		chromedp.WaitVisible(chromedp.ID("editor")))
	resp, err = http.Post(info.GitHubSim+"/_sim/jobs", "application/json",
		strings.NewReader(`{"repo":"e2e/portal","labels":["self-hosted","linux"],"durationMs":20000,"count":1,"name":"long"}`))
	require.NoError(t, err)
	resp.Body.Close()
	r.do(chromedp.WaitVisible(`//div[@data-pool="e2e/portal/default"]//tr[@class="runner"]/td[2][.="busy"]`))
	_, err = apiclient.New(info.API, info.AdminToken).UnregisterAgent(ctx, info.Agent)
	require.NoError(t, err)
	r.do(chromedp.WaitVisible(`//tr[@class="agent"]/td[contains(., "draining: 1 runner left in 1 pool of 1 repository")]`))
	shots.take(r, "portal-agent-draining")
}

// readUsage reads the usage figures of the 4 jobs: the totals, the
// pool's and the agent's lines and the charts agree with the API, in the
// window the user picks.
func readUsage(t *testing.T, b *browser, info devstack.Info) {
	t.Helper()
	figure := func(key string) string {
		return b.text(chromedp.Text(chromedp.CSS(`li[data-figure="` + key + `"] b`)))
	}
	b.do(chromedp.WaitVisible(`//li[@data-figure="jobs.served"]/b[normalize-space()="4"]`))
	b.do(chromedp.Evaluate[chromedp.Void](`(() => { const w = document.getElementById("window"); w.value = "1h";
		w.dispatchEvent(new Event("change")); })()`),
		chromedp.WaitVisible(`//p[@class="usage"][starts-with(., "Usage, 1h: 4 jobs served (0 failed), 0 lost")]`))
	assert.Equal(t, "4", figure("jobs.served"))
	assert.Equal(t, "0", figure("jobs.lost"))
	var u api.UsageReport
	req, err := http.NewRequest("GET", info.API+"/api/v1/usage?window=1h", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+info.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&u))
	assert.Equal(t, 4, u.Figures.Jobs.Served)
	assert.Positive(t, u.Figures.Cost.Useful, "priced at 3.6 a runner-hour")
	assert.Equal(t, strconv.FormatFloat(math.Round(u.Figures.Cost.Useful*100)/100, 'f', 2, 64), figure("cost.useful"))
	assert.NotEqual(t, "–", figure("queueWait.p95"), "the waits of the jobs that started")
	bars, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`))
	require.NoError(t, err)
	assert.Positive(t, bars, "the charts have bars")
	assert.Contains(t, b.text(chromedp.Text(chromedp.CSS("tr.agent"))), "4 jobs", "the agent's usage")
}

// axeResult is what axeViolations asks of axe: how many rules the page
// passes, and each violation.
type axeResult struct {
	Passes     int      `json:"passes"`
	Violations []string `json:"violations"`
}

// axeViolations runs axe-core (tests/testdata/axe) in the page for the
// WCAG 2.1 A and AA rules and answers each violation: its rule, what it
// asks and where.
func axeViolations(t *testing.T, b *browser) []string {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	_, err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(script)+";undefined"))
	require.NoError(t, err)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[axeResult](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}).then((r) => ({
		passes: r.passes.length,
		violations: r.violations.map((v) => v.id + ": " + v.help + " (" + v.nodes.length + ", such as " + v.nodes[0].target.join(" ") + ")"),
	}))`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Greater(t, res.Passes, 10, "axe checked the page")
	t.Logf("axe: %d rules pass", res.Passes)
	return res.Violations
}

// contrastScript finds the visible text of the lowest contrast with its
// background (WCAG's ratio) and answers "RATIO|ELEMENT: TEXT".
const contrastScript = `(() => {
  const lum = (c) => c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  }).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const m = getComputedStyle(e).backgroundColor.match(/[\d.]+/g);
      if (m && (m.length < 4 || Number(m[3]) > 0)) return getComputedStyle(e).backgroundColor;
    }
    return "rgb(255, 255, 255)";
  };
  let worst = 21, what = "";
  for (const el of document.querySelectorAll("body *")) {
    if (el.offsetParent === null) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(getComputedStyle(el).color), b = lum(bg(el));
    const r = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (r < worst) { worst = r; what = el.tagName + ": " + el.textContent.trim().slice(0, 40); }
  }
  return worst.toFixed(2) + "|" + what;
})()`

// browser is one tab; each step has a minute at most.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// browserStarts is how many times newBrowser starts Chromium before it
// fails: on a loaded machine a start can die before it listens (seen once
// in CI, "chrome failed to start" after 1 s), which says nothing of the
// page.
const browserStarts = 3

func newBrowser(t *testing.T, alloc context.Context) *browser {
	var err error
	for range browserStarts {
		ctx, cancel := chromedp.NewContext(alloc)
		// The first call starts the browser, on a context without a deadline.
		if err = chromedp.Do(ctx, chromedp.Navigate("about:blank")); err == nil {
			t.Cleanup(cancel)
			return &browser{t: t, ctx: ctx}
		}
		cancel()
		t.Logf("Chromium did not start; starting it again: %v", err)
	}
	require.NoError(t, err, "Chromium did not start %d times", browserStarts)
	return nil
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("%v; the page shows:\n%s", err, page)
	}
}

func (b *browser) text(sel chromedp.Action[string]) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, sel)
	require.NoError(b.t, err)
	return v
}

// shooter saves screenshots to docs/images when GARO_RECORD_SCREENSHOTS is
// set, and to a temporary directory otherwise (they are taken either way).
type shooter struct {
	t   *testing.T
	dir string
}

func screenshots(t *testing.T) shooter {
	if os.Getenv("GARO_RECORD_SCREENSHOTS") != "" {
		return shooter{t: t, dir: filepath.Join("..", "docs", "images")}
	}
	return shooter{t: t, dir: t.TempDir()}
}

func (s shooter) take(b *browser, name string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	require.NoError(s.t, err)
	require.NoError(s.t, os.MkdirAll(s.dir, 0o755))
	require.NoError(s.t, os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644))
}
