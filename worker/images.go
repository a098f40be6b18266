package worker

import (
	"fmt"
	"path"
	"strings"

	"github.com/distribution/reference"
)

// imagePolicy decides which images requests may run: an operator's
// choice, so that a tenant can run neither an image holding someone's
// private data nor one the operator never vetted.
type imagePolicy struct {
	patterns []string
}

func newImagePolicy(defaultImage string, allowed []string) imagePolicy {
	patterns := append([]string{defaultImage}, BuiltImages...)
	return imagePolicy{patterns: append(patterns, allowed...)}
}

// check returns nil when ref may run, an error saying why not otherwise.
func (p imagePolicy) check(ref string) error {
	name, tag, err := splitRef(ref)
	if err != nil {
		return err
	}
	for _, pat := range p.patterns {
		if matchImage(pat, name, tag) {
			return nil
		}
	}
	return fmt.Errorf("image %q is not on this worker's allow-list (worker --allowed-images); allowed: %s", ref, strings.Join(p.patterns, ", "))
}

// splitRef returns the familiar repository name and the tag of ref ("latest"
// when it names none; the digest when it names one).
func splitRef(ref string) (name, tag string, err error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", fmt.Errorf("image %q is not a valid image name: %v", ref, err)
	}
	name = reference.FamiliarName(named)
	switch r := named.(type) {
	case reference.Canonical:
		tag = r.Digest().String()
	case reference.Tagged:
		tag = r.Tag()
	default:
		tag = "latest"
	}
	return name, tag, nil
}

// matchImage matches a pattern: a repository allows its every tag; a
// reference with a tag is matched whole, with path.Match's wildcards.
func matchImage(pattern, name, tag string) bool {
	pname, ptag, hasTag := cutTag(pattern)
	if ok, err := path.Match(pname, name); err != nil || !ok {
		return false
	}
	if !hasTag {
		return true
	}
	ok, err := path.Match(ptag, tag)
	return err == nil && ok
}

// cutTag splits "name:tag" at the tag's colon, not a registry port's.
func cutTag(pattern string) (name, tag string, ok bool) {
	if i := strings.LastIndex(pattern, "@"); i >= 0 {
		return pattern[:i], pattern[i+1:], true
	}
	i := strings.LastIndex(pattern, ":")
	if i < 0 || strings.Contains(pattern[i:], "/") {
		return pattern, "", false
	}
	return pattern[:i], pattern[i+1:], true
}
