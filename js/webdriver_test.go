package js

// A minimal W3C WebDriver client for chromedriver: enough to open a page,
// run a script in it and read the browser's console.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"gopush/internal/testenv"
)

const (
	chromiumBin     = "/usr/bin/chromium"
	chromedriverBin = "/usr/bin/chromedriver"
)

type webDriver struct {
	base    string // http://127.0.0.1:port of chromedriver
	session string
	http    *http.Client
}

// startBrowser starts chromedriver on a free port and opens a headless
// Chromium session with a fresh profile and the extra command-line flags.
// Both stop when the test ends.
func startBrowser(t *testing.T, flags ...string) *webDriver {
	t.Helper()
	for _, bin := range []string{chromiumBin, chromedriverBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run js/install-browser.sh (Debian chromium and chromium-driver)", bin)
		}
	}
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	logPath := t.TempDir() + "/chromedriver.log"
	cmd := exec.Command(chromedriverBin, "--port="+port, "--log-path="+logPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	w := &webDriver{base: "http://" + addr, http: &http.Client{Timeout: 60 * time.Second}}
	t.Cleanup(func() {
		if w.session != "" {
			w.call("DELETE", "/session/"+w.session, nil, nil)
		}
		cmd.Process.Kill()
		<-exited
		w.http.CloseIdleConnections()
	})
	testenv.WaitFor(t, 20*time.Second, "chromedriver to be ready", func() bool {
		var st struct{ Ready bool }
		return w.call("GET", "/status", nil, &st) == nil && st.Ready
	})
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromiumBin,
			"args": append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
				"--no-first-run", "--disable-background-networking", "--disable-component-update",
				"--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()},
				flags...),
		},
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
	}}}
	var sess struct{ SessionID string }
	if err := w.call("POST", "/session", caps, &sess); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("starting Chromium through chromedriver: %v\n%s", err, tail(b, 4000))
	}
	w.session = sess.SessionID
	return w
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// call does one WebDriver command and decodes its "value" into out.
func (w *webDriver) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var ans struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("%s %s: HTTP %s: %q", method, path, resp.Status, b)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %s: %s", method, path, resp.Status, ans.Value)
	}
	if out != nil {
		return json.Unmarshal(ans.Value, out)
	}
	return nil
}

func (w *webDriver) open(t *testing.T, url string) {
	t.Helper()
	if err := w.call("POST", "/session/"+w.session+"/url", map[string]string{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
}

// eval runs script (a function body that returns a value) in the page.
func (w *webDriver) eval(t *testing.T, script string, out any) {
	t.Helper()
	err := w.call("POST", "/session/"+w.session+"/execute/sync",
		map[string]any{"script": script, "args": []any{}}, out)
	if err != nil {
		t.Fatal(err)
	}
}

// console returns what the page logged so far.
func (w *webDriver) console() string {
	var entries []struct {
		Level   string
		Message string
	}
	if err := w.call("POST", "/session/"+w.session+"/se/log", map[string]string{"type": "browser"}, &entries); err != nil {
		return "(console unavailable: " + err.Error() + ")"
	}
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(e.Level + " " + e.Message + "\n")
	}
	return b.String()
}
