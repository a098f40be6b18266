package main

import (
	"fmt"
	"testing"

	"github.com/execq/execq/worker"
)

func TestParseWarm(t *testing.T) {
	t.Parallel()
	c := worker.DefaultCatalogue()
	cases := []struct {
		flag string
		want string
	}{
		{"python=4,node=1,default=2", "[{execq-python:latest 4} {execq-node:latest 1} {execq-sandbox:latest 2}]"},
		// default and sh are one image: their counts add up.
		{"default=1, sh=2", "[{execq-sandbox:latest 3}]"},
		{"python:3.12-slim=2,c=0", "[{python:3.12-slim 2} {execq-c:latest 0}]"},
	}
	for _, tc := range cases {
		got, err := parseWarm(tc.flag, c, worker.DefaultImage, 8)
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("parseWarm(%q) = %v, %v; want %s", tc.flag, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", ",", "python", "python=-1", "=3", "python=1,python=2", "python=5,node=4"} {
		if got, err := parseWarm(bad, c, worker.DefaultImage, 8); err == nil {
			t.Errorf("parseWarm(%q) = %v; want an error", bad, got)
		}
	}
}
