package main

import (
	"testing"

	"github.com/execq/execq/tasks"
)

func TestExitCodeOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status tasks.Status
		exit   int
		want   int
	}{
		{tasks.StatusSucceeded, 0, 0},
		{tasks.StatusFailed, 3, 3},
		{tasks.StatusFailed, 126, 126},
		{tasks.StatusFailed, 127, 127},
		{tasks.StatusFailed, 137, 137}, // a command that kill -9'd itself
		{tasks.StatusFailed, 255, 255},
		{tasks.StatusTimedOut, -1, 124},
		{tasks.StatusCanceled, -1, 130},
		{tasks.StatusOOMKilled, 137, 137},
		{tasks.StatusOOMKilled, 1, 137},
		{tasks.StatusRejected, -1, 125},
		{tasks.StatusError, -1, 125},
		{tasks.Status("unknown"), 0, 125},
	}
	for _, c := range cases {
		if got := exitCodeOf(c.status, c.exit); got != c.want {
			t.Errorf("%s with exit code %d: %d, want %d", c.status, c.exit, got, c.want)
		}
	}
}
