package tasks_test

import (
	"testing"

	"github.com/execq/execq/tasks"
)

func TestMatchAny(t *testing.T) {
	t.Parallel()
	cases := []struct {
		globs []string
		name  string
		want  bool
	}{
		{[]string{"a.txt"}, "a.txt", true},
		{[]string{"a.txt"}, "b.txt", false},
		{[]string{"*.txt"}, "a.txt", true},
		{[]string{"*.txt"}, "dir/a.txt", false}, // * does not cross a slash
		{[]string{"dir/*.txt"}, "dir/a.txt", true},
		{[]string{"dir/*"}, "dir/sub/a.txt", false},
		{[]string{"?.txt"}, "a.txt", true},
		{[]string{"[ab].txt"}, "b.txt", true},
		{[]string{"[ab].txt"}, "c.txt", false},

		// ** matches zero or more directories.
		{[]string{"**/*.txt"}, "a.txt", true},
		{[]string{"**/*.txt"}, "x/a.txt", true},
		{[]string{"**/*.txt"}, "x/y/z/a.txt", true},
		{[]string{"**/*.txt"}, "x/y/a.log", false},
		{[]string{"out/**/*.txt"}, "out/a.txt", true},
		{[]string{"out/**/*.txt"}, "out/deep/er/a.txt", true},
		{[]string{"out/**/*.txt"}, "other/a.txt", false},
		{[]string{"out/**/*.txt"}, "x/out/a.txt", false},
		{[]string{"a/**/b/**/c"}, "a/b/c", true},
		{[]string{"a/**/b/**/c"}, "a/x/b/y/z/c", true},
		{[]string{"a/**/b/**/c"}, "a/x/y/c", false},
		{[]string{"**"}, "a", true},
		{[]string{"**"}, "a/b/c", true},
		{[]string{"out/**"}, "out/a/b", true},
		{[]string{"out/**"}, "outside/a", false},

		// Globs are cleaned like paths.
		{[]string{"./out/*.txt"}, "out/a.txt", true},
		{[]string{"out//*.txt"}, "out/a.txt", true},

		{[]string{"*.log", "*.txt"}, "a.txt", true},
		{[]string{"*.log", "*.md"}, "a.txt", false},
		{nil, "a.txt", false},
		{[]string{"["}, "[", false}, // a malformed glob matches nothing
	}
	for _, c := range cases {
		if got := tasks.MatchAny(c.globs, c.name); got != c.want {
			t.Errorf("MatchAny(%q, %q) = %v, want %v", c.globs, c.name, got, c.want)
		}
	}
}
