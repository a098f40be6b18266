package docker

import (
	"os"
	"strings"
	"testing"
)

// Only a static ELF executable becomes the agent: a dynamically linked
// one would fail in every image without its loader, with nothing but "no
// such file or directory" to say why.
func TestAgentBinaryMustBeStatic(t *testing.T) {
	for _, c := range []struct {
		path string // a file of the test machine, static or not
		want string
	}{
		{"/bin/busybox", ""}, // busybox-static, which the set-up installs
		{"/bin/sh", "dynamically linked"},
	} {
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		err = checkStatic(b)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
	if err := checkStatic([]byte("#!/bin/sh\n")); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("a script: %v", err)
	}
}
