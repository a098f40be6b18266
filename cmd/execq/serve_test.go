package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execq/execq/internal/testutil"
)

// Without tokens, serve refuses an address other hosts reach, before it
// dials Redis.
func TestServeRefusesOpenAddressWithoutTokens(t *testing.T) {
	t.Setenv("EXECQ_API_TOKENS", "")
	unreachable := fmt.Sprintf("redis://127.0.0.1:%d/0", testutil.FreePort(t))
	for _, addr := range []string{"0.0.0.0:0", ":8088", "192.0.2.1:8088", "example.com:80"} {
		code, _, stderr := execq(t, "", "serve", "--redis", unreachable, "--addr", addr)
		if code != exitExecqFailed || !strings.Contains(stderr, "is not a loopback address, and no API tokens are set") {
			t.Errorf("serve --addr %s: exit %d, stderr %q", addr, code, stderr)
		}
	}
	code, _, stderr := execq(t, "", "serve", "--redis", unreachable, "--api-token-file", filepath.Join(t.TempDir(), "none"))
	if code != exitExecqFailed || !strings.Contains(stderr, "read api tokens") {
		t.Errorf("a missing token file: exit %d, stderr %q", code, stderr)
	}
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8088": true,
		"127.9.9.9:1":    true,
		"[::1]:8088":     true,
		"localhost:80":   true,
		"0.0.0.0:8088":   false,
		":8088":          false,
		"[::]:8088":      false,
		"10.0.0.1:80":    false,
		"no-port":        false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v", addr, got)
		}
	}
}

func TestServeTokenFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte("# ops\none\n\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXECQ_API_TOKENS", "three,four")
	toks, err := (&apiFlags{tokenFile: f}).tokens()
	if err != nil || toks.Len() != 4 {
		t.Errorf("tokens: %d, %v; want 4", toks.Len(), err)
	}
}
