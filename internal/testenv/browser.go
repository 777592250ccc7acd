package testenv

// A minimal W3C WebDriver client for chromedriver driving Debian's headless
// Chromium (js/install-browser.sh installs both): open a page, run a
// script in it, read its console, take a screenshot.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

const (
	chromiumBin     = "/usr/bin/chromium"
	chromedriverBin = "/usr/bin/chromedriver"
)

// Browser is one headless Chromium session.
type Browser struct {
	base    string // http://127.0.0.1:port of chromedriver
	session string
	http    *http.Client
}

// StartBrowser starts chromedriver on a free port and a headless Chromium
// session with a fresh profile and a width × height window. Both stop when
// the test ends.
func StartBrowser(t testing.TB, width, height int) *Browser {
	t.Helper()
	for _, bin := range []string{chromiumBin, chromedriverBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run js/install-browser.sh (Debian chromium and chromium-driver)", bin)
		}
	}
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	logPath := t.TempDir() + "/chromedriver.log"
	cmd := exec.Command(chromedriverBin, "--port="+port, "--log-path="+logPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b := &Browser{base: "http://" + addr, http: &http.Client{Timeout: 60 * time.Second}}
	t.Cleanup(func() {
		if b.session != "" {
			b.call("DELETE", "/session/"+b.session, nil, nil)
		}
		cmd.Process.Kill()
		<-exited
		b.http.CloseIdleConnections()
	})
	WaitFor(t, 20*time.Second, "chromedriver to be ready", func() bool {
		var st struct{ Ready bool }
		return b.call("GET", "/status", nil, &st) == nil && st.Ready
	})
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromiumBin,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
				"--no-first-run", "--disable-background-networking", "--disable-component-update",
				"--disable-sync", "--disable-dev-shm-usage", fmt.Sprintf("--window-size=%d,%d", width, height),
				"--user-data-dir=" + t.TempDir()},
		},
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
	}}}
	var sess struct{ SessionID string }
	if err := b.call("POST", "/session", caps, &sess); err != nil {
		log, _ := os.ReadFile(logPath)
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		t.Fatalf("starting Chromium through chromedriver: %v\n%s", err, log)
	}
	b.session = sess.SessionID
	return b
}

// call does one WebDriver command and decodes its "value" into out.
func (b *Browser) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var ans struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("%s %s: HTTP %s: %q", method, path, resp.Status, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %s: %s", method, path, resp.Status, ans.Value)
	}
	if out != nil {
		return json.Unmarshal(ans.Value, out)
	}
	return nil
}

// Open loads url in the session's window.
func (b *Browser) Open(t testing.TB, url string) {
	t.Helper()
	if err := b.call("POST", "/session/"+b.session+"/url", map[string]string{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
}

// Eval runs script (a function body that returns a value) in the page and
// decodes what it returns into out.
func (b *Browser) Eval(t testing.TB, script string, out any) {
	t.Helper()
	err := b.call("POST", "/session/"+b.session+"/execute/sync", map[string]any{"script": script, "args": []any{}}, out)
	if err != nil {
		t.Fatal(err)
	}
}

// Screenshot writes a PNG of the window to path.
func (b *Browser) Screenshot(t testing.TB, path string) {
	t.Helper()
	var enc string
	if err := b.call("GET", "/session/"+b.session+"/screenshot", nil, &enc); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Console returns what the page logged so far.
func (b *Browser) Console() string {
	var entries []struct {
		Level   string
		Message string
	}
	if err := b.call("POST", "/session/"+b.session+"/se/log", map[string]string{"type": "browser"}, &entries); err != nil {
		return "(console unavailable: " + err.Error() + ")"
	}
	var buf bytes.Buffer
	for _, e := range entries {
		buf.WriteString(e.Level + " " + e.Message + "\n")
	}
	return buf.String()
}
