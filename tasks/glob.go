package tasks

import (
	"path"
	"strings"
)

// MatchAny reports whether name matches one of globs. A glob is matched
// segment by segment with path.Match; a "**" segment matches any number of
// directories, including none.
func MatchAny(globs []string, name string) bool {
	for _, g := range globs {
		if matchSegments(strings.Split(path.Clean(g), "/"), strings.Split(name, "/")) {
			return true
		}
	}
	return false
}

func matchSegments(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			rest := pattern[1:]
			for i := 0; i <= len(name); i++ {
				if matchSegments(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pattern[0], name[0]); err != nil || !ok {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}
