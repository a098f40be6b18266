package main

import "testing"

func TestPrintableEscapesWhatATerminalActsOn(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"out/a.txt":                         "out/a.txt",
		"x\x1b]0;owned\x07":                 `x\x1b]0;owned\a`,
		"a\nexecq: all files written":       `a\nexecq: all files written`,
		"bad\xffutf8":                       `bad\xffutf8`,
		"not returned: symbolic link to /x": "not returned: symbolic link to /x",
		"bad\uFFFD is text":                 "bad\uFFFD is text",
		`quoted "names" stay`:               `quoted "names" stay`,
		"ok \u00e9\u4e2d":                   "ok \u00e9\u4e2d",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
