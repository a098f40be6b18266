//go:build linux

package agent

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// tenantAttribute reports whether an extended attribute is of the kinds the
// sandbox's user may set on what it owns: user.* attributes and POSIX ACLs
// (system.posix_acl_access, system.posix_acl_default). A default ACL on
// the workspace would give every file a later tenant creates its modes; a
// user.* attribute would carry data to it. Other namespaces need
// capabilities the user never has, and security.* labels are the host's.
func tenantAttribute(name string) bool {
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "system.posix_acl_")
}

// tenantAttributes lists path's tenant attributes, not following a link. A
// file system without extended attributes has none.
func tenantAttributes(path string) ([]string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Llistxattr(path, buf)
		switch {
		case err == unix.ERANGE && len(buf) < 1<<20:
			buf = make([]byte, 2*len(buf))
			continue
		case err == unix.ENOTSUP || err == unix.EOPNOTSUPP:
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("list the attributes of %s: %w", path, err)
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if tenantAttribute(name) {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

// clearAttributes removes path's tenant attributes and returns how many.
func clearAttributes(path string) (int, error) {
	names, err := tenantAttributes(path)
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		if err := unix.Lremovexattr(path, name); err != nil && err != unix.ENODATA {
			return 0, fmt.Errorf("remove the attribute %s of %s: %w", name, path, err)
		}
	}
	return len(names), nil
}
