package js

// The browser tests drive Debian's headless Chromium through chromedriver
// with testenv.Browser (shared with the cluster dashboard's test in e2e/).

import (
	"testing"

	"gopush/internal/testenv"
)

type webDriver struct{ *testenv.Browser }

// startBrowser starts chromedriver and a headless Chromium session with a
// fresh profile; both stop when the test ends.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	return &webDriver{testenv.StartBrowser(t, 800, 600)}
}

func (w *webDriver) open(t *testing.T, url string) { t.Helper(); w.Open(t, url) }

// eval runs script (a function body that returns a value) in the page.
func (w *webDriver) eval(t *testing.T, script string, out any) { t.Helper(); w.Eval(t, script, out) }

// console returns what the page logged so far.
func (w *webDriver) console() string { return w.Console() }
