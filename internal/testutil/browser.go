package testutil

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumArgs start a headless Chromium that may run as root (hence no
// sandbox) and makes no requests of its own beyond the pages a test opens.
var chromiumArgs = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-dev-shm-usage",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--window-size=1400,1000",
}

// Browser is a headless Chromium of one test, driven through chromedriver's
// W3C WebDriver HTTP API. Its methods fail the test on errors.
type Browser struct {
	t       testing.TB
	base    string // chromedriver's URL
	session string
	http    *http.Client
}

// StartBrowser starts chromedriver and a headless Chromium, and ends both
// when the test ends. Chromium and chromedriver come from the Debian
// packages chromium and chromium-driver.
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	chromium := lookPath("chromium", "chromium-browser", "google-chrome")
	driver := lookPath("chromedriver")
	if chromium == "" || driver == "" {
		Missing(t, "chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")
	}
	// Both made before the processes start, so that they are removed after
	// the processes end (cleanups run last first). `go test -artifacts`
	// keeps the artifacts: chromedriver's log and screenshots.
	profile := t.TempDir()
	artifacts := t.ArtifactDir()

	port := FreePort(t)
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port), "--log-path="+filepath.Join(artifacts, "chromedriver.log"))
	// Its own process group: Chromium and its helpers are ended with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromedriver: %v", err)
	}
	b := &Browser{t: t, base: "http://127.0.0.1:" + strconv.Itoa(port), http: &http.Client{Timeout: time.Minute}}
	t.Cleanup(func() {
		if b.session != "" {
			// Quits Chromium; killing the group below catches what is left.
			_ = b.call(http.MethodDelete, "/session/"+b.session, nil, nil)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	b.waitReady(t, 20*time.Second)

	args := append(append([]string(nil), chromiumArgs...), "--user-data-dir="+filepath.Join(profile, "chromium"))
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":         "chrome",
		"goog:chromeOptions":  map[string]any{"binary": chromium, "args": args},
		"pageLoadStrategy":    "normal",
		"acceptInsecureCerts": false,
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(http.MethodPost, "/session", caps, &created); err != nil {
		t.Fatalf("start chromium (%s) through chromedriver: %v", chromium, err)
	}
	b.session = created.SessionID
	return b
}

func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// waitReady polls chromedriver's status until it accepts sessions.
func (b *Browser) waitReady(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var status struct {
			Ready bool `json:"ready"`
		}
		err := b.call(http.MethodGet, "/status", nil, &status)
		if err == nil && status.Ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver on %s is not ready after %s: %v", b.base, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Open navigates to url and returns once the page has loaded (scripts may
// still be fetching data: see WaitText).
func (b *Browser) Open(url string) {
	b.t.Helper()
	if err := b.call(http.MethodPost, b.path("/url"), map[string]string{"url": url}, nil); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
}

// Text returns the page's rendered text (document.body.innerText).
func (b *Browser) Text() string {
	b.t.Helper()
	text, err := b.text()
	if err != nil {
		b.t.Fatalf("page text: %v", err)
	}
	return text
}

func (b *Browser) text() (string, error) {
	var text string
	err := b.call(http.MethodPost, b.path("/execute/sync"), map[string]any{
		"script": "return document.body ? document.body.innerText : '';",
		"args":   []any{},
	}, &text)
	return text, err
}

// WaitText polls the page's rendered text until it contains every one of
// want, and returns it. After timeout it fails the test, showing the text it
// last saw and saving a screenshot next to the test's other artifacts.
func (b *Browser) WaitText(timeout time.Duration, want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, err := b.text()
		if err == nil && containsAll(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			shot := b.SaveScreenshot("timeout.png")
			b.t.Fatalf("page does not show %q after %s (err %v; screenshot %s); its text:\n%s", want, timeout, err, shot, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TextOf returns the rendered text of the first element that the CSS
// selector css matches, or "" when none does.
func (b *Browser) TextOf(css string) string {
	b.t.Helper()
	var text string
	err := b.call(http.MethodPost, b.path("/execute/sync"), map[string]any{
		"script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
		"args":   []any{css},
	}, &text)
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return text
}

// Click clicks the first element that the CSS selector css matches.
func (b *Browser) Click(css string) {
	b.t.Helper()
	var found map[string]string
	if err := b.call(http.MethodPost, b.path("/element"), map[string]string{"using": "css selector", "value": css}, &found); err != nil {
		b.t.Fatalf("find %s: %v", css, err)
	}
	// The W3C WebDriver key of an element reference.
	id := found["element-6066-11e4-a52e-4f735466cecf"]
	if err := b.call(http.MethodPost, b.path("/element/"+id+"/click"), map[string]any{}, nil); err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
}

// Screenshot returns a PNG of the browser window.
func (b *Browser) Screenshot() []byte {
	b.t.Helper()
	var encoded string
	if err := b.call(http.MethodGet, b.path("/screenshot"), nil, &encoded); err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	png, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// SaveScreenshot writes a screenshot named name into the test's artifact
// directory, which `go test -artifacts` keeps, and returns its path.
func (b *Browser) SaveScreenshot(name string) string {
	b.t.Helper()
	path := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.WriteFile(path, b.Screenshot(), 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	return path
}

func (b *Browser) path(p string) string { return "/session/" + b.session + p }

// call makes one WebDriver request, decoding the response's "value" into
// out when out is not nil.
func (b *Browser) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		j, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	var envelope struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("webdriver %s %s: %s: %w", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(envelope.Value, &e)
		return fmt.Errorf("webdriver %s %s: %s: %s: %s", method, path, resp.Status, e.Error, e.Message)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(envelope.Value, out); err != nil {
		return fmt.Errorf("webdriver %s %s: decode value: %w", method, path, err)
	}
	return nil
}
