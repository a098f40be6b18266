package docker

import (
	"os"
	"os/exec"
	"testing"
)

func TestExiting(t *testing.T) {
	if exiting(os.Getpid()) {
		t.Error("this test's own process reads as exiting")
	}
	// A reaped process has no /proc entry: it is gone, as good as exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !exiting(cmd.Process.Pid) {
		t.Error("a reaped process does not read as exiting")
	}
}
