package docker

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestLive(t *testing.T) {
	if !live(os.Getpid()) {
		t.Error("this test's own process does not read as live")
	}
	// A zombie: exited, not yet reaped.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for live(pid) {
		if time.Now().After(deadline) {
			t.Fatal("an exited, unreaped process still reads as live after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// Reaped: no /proc entry at all.
	if live(pid) {
		t.Error("a reaped process reads as live")
	}
}
