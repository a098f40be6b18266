package worker

import "testing"

func TestImagePolicy(t *testing.T) {
	t.Parallel()
	p := newImagePolicy("execq-sandbox:latest", []string{"python", "node:20*", "registry.example:5000/team/*:v1"})
	cases := []struct {
		ref  string
		want bool
	}{
		{"execq-sandbox:latest", true},
		{"execq-sandbox", true},
		{"execq-python:latest", true}, // built by execq
		{"execq-c:dev", true},
		{"python", true},
		{"python:3.12-slim", true},
		{"docker.io/library/python:3.12", true},
		{"node:20.1", true},
		{"node:18", false},
		{"registry.example:5000/team/tool:v1", true},
		{"registry.example:5000/team/tool:v2", false},
		{"registry.example:5000/other/tool:v1", false},
		{"private-data:latest", false},
		{"execq-sandboxed:latest", false},
		{"UPPER:bad", false},
	}
	for _, c := range cases {
		if got := p.check(c.ref) == nil; got != c.want {
			t.Errorf("check(%q) allowed = %v, want %v (%v)", c.ref, got, c.want, p.check(c.ref))
		}
	}
}
