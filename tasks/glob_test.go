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

		// Dotfiles only when the glob names them.
		{[]string{"*"}, ".env", false},
		{[]string{".*"}, ".env", true},
		{[]string{".env"}, ".env", true},
		{[]string{"**"}, ".git/config", false},
		{[]string{"**/*"}, "a/.hidden", false},
		{[]string{"**/config"}, ".git/config", false},
		{[]string{".git/**"}, ".git/config", true},
		{[]string{".git/**"}, ".git/hooks/pre-commit", true},
		{[]string{".git/*"}, ".git/.lock", false},
		{[]string{"**/.*"}, "a/b/.hidden", true},
		{[]string{"keep/.named"}, "keep/.named", true},
		{[]string{"*/x"}, ".git/x", false},
	}
	for _, c := range cases {
		if got := tasks.MatchAny(c.globs, c.name); got != c.want {
			t.Errorf("MatchAny(%q, %q) = %v, want %v", c.globs, c.name, got, c.want)
		}
	}
}

func TestMayMatchUnder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		globs []string
		dir   string
		want  bool
	}{
		{[]string{"a.txt"}, "out", false},
		{[]string{"out/*.txt"}, "out", true},
		{[]string{"out/*.txt"}, "out/sub", false},
		{[]string{"out/**/*.txt"}, "out/sub/deeper", true},
		{[]string{"out/**/*.txt"}, "other", false},
		{[]string{"**"}, "any/where", true},
		{[]string{"**"}, ".git", false},
		{[]string{"**/*.txt"}, "a/.cache", false},
		{[]string{".git/**"}, ".git", true},
		{[]string{".git/**"}, ".git/hooks", true},
		{[]string{"*/x"}, "d", true},
		{[]string{"*/x"}, "d/e", false},
		{nil, "d", false},
	}
	for _, c := range cases {
		if got := tasks.MayMatchUnder(c.globs, c.dir); got != c.want {
			t.Errorf("MayMatchUnder(%q, %q) = %v, want %v", c.globs, c.dir, got, c.want)
		}
	}
}
