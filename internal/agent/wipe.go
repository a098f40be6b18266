//go:build linux

package agent

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// errBudget is returned when a reset or a collection runs out of time.
var errBudget = errors.New("out of time")

// emptyDir removes everything inside dir, not dir itself: depth-first,
// never following a symbolic link, whatever the depth of the tree and the
// modes its owner left. Each level holds one descriptor, so the depth is
// bounded by the descriptor limit; the tmpfs mounts' inode limits keep it
// far below. It returns how many entries it removed.
func emptyDir(dir string, deadline time.Time) (int, error) {
	fd, err := openDir(unix.AT_FDCWD, dir)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	n, err := removeContents(fd, deadline)
	if err != nil {
		return n, fmt.Errorf("empty %s: %w", dir, err)
	}
	return n, nil
}

// openDir opens name under dirfd as a directory, refusing a symbolic link;
// a directory its owner made unreadable is made readable first (the helper
// runs as that owner; the agent needs no such help).
func openDir(dirfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err == unix.EACCES {
		if cerr := unix.Fchmodat(dirfd, name, 0o700, 0); cerr == nil {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
	}
	return fd, err
}

// removeContents empties the directory open at dirfd.
func removeContents(dirfd int, deadline time.Time) (int, error) {
	removed := 0
	fixedMode := false
	chunk := getChunk()
	defer putChunk(chunk)
	buf := *chunk
	for {
		names, err := readNames(dirfd, buf)
		if err != nil {
			return removed, err
		}
		if len(names) == 0 {
			return removed, nil
		}
		for _, name := range names {
			if time.Now().After(deadline) {
				return removed, errBudget
			}
			err := unix.Unlinkat(dirfd, name, 0)
			if err == unix.EACCES && !fixedMode {
				// The directory itself is not writable or searchable.
				fixedMode = true
				if cerr := unix.Fchmod(dirfd, 0o700); cerr == nil {
					err = unix.Unlinkat(dirfd, name, 0)
				}
			}
			switch err {
			case nil:
				removed++
				continue
			case unix.ENOENT:
				continue
			case unix.EISDIR, unix.EPERM:
				// A directory (Linux says EISDIR; POSIX allows EPERM).
			default:
				return removed, fmt.Errorf("remove %s: %w", name, err)
			}
			sub, err := openDir(dirfd, name)
			if err != nil {
				return removed, fmt.Errorf("open directory %s: %w", name, err)
			}
			n, err := removeContents(sub, deadline)
			unix.Close(sub)
			removed += n
			if err != nil {
				return removed, fmt.Errorf("%s/%w", name, err)
			}
			if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
				return removed, fmt.Errorf("remove directory %s: %w", name, err)
			}
			removed++
		}
		// Entries are removed as they are read; read again from the start.
		if _, err := unix.Seek(dirfd, 0, 0); err != nil {
			return removed, err
		}
	}
}

// readNames reads up to a buffer's worth of entry names of the directory
// open at dirfd, "." and ".." left out.
func readNames(dirfd int, buf []byte) ([]string, error) {
	var names []string
	for len(names) == 0 {
		n, err := unix.Getdents(dirfd, buf)
		if err != nil {
			return nil, fmt.Errorf("read directory: %w", err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	return names, nil
}

// isEmpty reports whether dir has no entry.
func isEmpty(dir string) (bool, error) {
	fd, err := openDir(unix.AT_FDCWD, dir)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	chunk := getChunk()
	defer putChunk(chunk)
	names, err := readNames(fd, (*chunk)[:4096])
	return len(names) == 0, err
}
