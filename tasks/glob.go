package tasks

import (
	"path"
	"strings"
)

// MatchAny reports whether name, a cleaned path relative to /workspace,
// matches one of globs. A glob is matched segment by segment with
// path.Match; a "**" segment matches any number of directories, including
// none. As in a shell, a segment of name that begins with '.' is matched
// only by a segment of the glob that begins with '.' too: "*" and "**" never
// match dotfiles or dot directories (".git", ".env") unless the glob names
// them.
func MatchAny(globs []string, name string) bool {
	segs := strings.Split(name, "/")
	for _, g := range globs {
		if matchSegments(globSegments(g), segs, false) {
			return true
		}
	}
	return false
}

// MayMatchUnder reports whether a glob could match a path below the
// directory dir (a cleaned path relative to /workspace): whether a walk
// must look inside it.
func MayMatchUnder(globs []string, dir string) bool {
	segs := strings.Split(dir, "/")
	for _, g := range globs {
		if matchSegments(globSegments(g), segs, true) {
			return true
		}
	}
	return false
}

func globSegments(g string) []string { return strings.Split(path.Clean(g), "/") }

// matchSegments matches name against pattern; with prefix, it reports
// whether name could be the beginning of a path that matches.
func matchSegments(pattern, name []string, prefix bool) bool {
	for len(pattern) > 0 {
		if len(name) == 0 {
			return prefix
		}
		if pattern[0] == "**" {
			rest := pattern[1:]
			for i := 0; i <= len(name); i++ {
				if matchSegments(rest, name[i:], prefix) {
					return true
				}
				if i < len(name) && strings.HasPrefix(name[i], ".") {
					// ** does not cross a dot directory.
					return false
				}
			}
			return prefix
		}
		if !matchSegment(pattern[0], name[0]) {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}

func matchSegment(pattern, name string) bool {
	if strings.HasPrefix(name, ".") && !strings.HasPrefix(pattern, ".") {
		return false
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
