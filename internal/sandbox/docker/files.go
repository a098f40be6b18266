package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/execq/execq/tasks"
)

// filesTimeout bounds putting files in and collecting them.
const filesTimeout = 2 * time.Minute

// PutFiles writes files into /workspace through tar run as the
// unprivileged user, who owns them. The engine refuses to copy into a
// container with a read-only root filesystem, even into its tmpfs mounts,
// so files go in through an exec.
func (c *Container) PutFiles(ctx context.Context, files []tasks.File) error {
	if len(files) == 0 {
		return nil
	}
	archive, err := tarFiles(files, c.rt.cfg.User)
	if err != nil {
		return fmt.Errorf("put files: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, filesTimeout)
	defer cancel()
	wipeFirst := "0"
	if c.workspace == workspaceDirty {
		wipeFirst = "1"
	}
	code, stderr, err := c.run(ctx, []string{"/bin/sh", "-c", putFilesScript, "put", tasks.Workspace, wipeFirst},
		bytes.NewReader(archive), nil)
	if err != nil {
		return fmt.Errorf("put files into %s: %w", short(c.id), err)
	}
	if code != 0 {
		return fmt.Errorf("put files into %s: exit %d: %s", short(c.id), code, strings.TrimSpace(stderr))
	}
	c.workspace = workspacePrepared
	return nil
}

// tarFiles builds the archive of files, with every parent directory as an
// entry of mode 0755, all owned by user.
func tarFiles(files []tasks.File, user string) ([]byte, error) {
	uidText, gidText := splitUser(user)
	uid, _ := strconv.Atoi(uidText)
	gid, _ := strconv.Atoi(gidText)
	now := time.Now()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		name, err := tasks.WorkspacePath(f.Path)
		if err != nil {
			return nil, err
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if dirs[dir] {
				break
			}
			dirs[dir] = true
		}
	}
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs) // parents before children
	for _, d := range sortedDirs {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755,
			Uid: uid, Gid: gid, ModTime: now,
		}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		name, _ := tasks.WorkspacePath(f.Path)
		mode := int64(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(f.Content)),
			Uid: uid, Gid: gid, ModTime: now,
		}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Collect returns the files under /workspace that match globs. It archives
// /workspace with tar run as the unprivileged user and reads the archive:
// symbolic links are reported, never followed, so nothing outside
// /workspace can be collected.
func (c *Container) Collect(ctx context.Context, globs []string, maxBytes int64) ([]tasks.CollectedFile, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, filesTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	type collected struct {
		files []tasks.CollectedFile
		err   error
	}
	done := make(chan collected, 1)
	go func() {
		files, err := readCollected(pr, globs, maxBytes)
		// Drain what tar still writes, so that it can exit.
		_, _ = io.Copy(io.Discard, pr)
		done <- collected{files, err}
	}()
	code, stderr, err := c.run(ctx, []string{"tar", "-c", "-f", "-", "-C", tasks.Workspace, "."}, nil, pw)
	pw.Close()
	got := <-done
	if err != nil {
		return nil, fmt.Errorf("collect files from %s: %w", short(c.id), err)
	}
	if got.err != nil {
		return nil, fmt.Errorf("collect files from %s: %w", short(c.id), got.err)
	}
	if code != 0 {
		return got.files, fmt.Errorf("collect files from %s: tar exited %d: %s", short(c.id), code, strings.TrimSpace(stderr))
	}
	return got.files, nil
}

// readCollected picks the entries matching globs out of a tar stream.
func readCollected(r io.Reader, globs []string, maxBytes int64) ([]tasks.CollectedFile, error) {
	tr := tar.NewReader(r)
	var files []tasks.CollectedFile
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("read archive: %w", err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		if name == "." || !tasks.MatchAny(globs, name) {
			continue
		}
		f := tasks.CollectedFile{Path: name, Size: h.Size, Mode: tasks.FileMode(h.Mode & 0o777)}
		switch h.Typeflag {
		case tar.TypeReg:
			if total+h.Size > maxBytes {
				f.Error = fmt.Sprintf("not returned: collected files would exceed %d bytes", maxBytes)
				break
			}
			content, err := io.ReadAll(tr)
			if err != nil {
				return files, fmt.Errorf("read %s from archive: %w", name, err)
			}
			f.Content = content
			total += int64(len(content))
		case tar.TypeSymlink:
			f.Size = 0
			f.Error = fmt.Sprintf("not returned: symbolic link to %q", h.Linkname)
		case tar.TypeLink:
			f.Size = 0
			f.Error = fmt.Sprintf("not returned: hard link to %q", h.Linkname)
		case tar.TypeDir:
			continue
		default:
			f.Size = 0
			f.Error = "not returned: not a regular file"
		}
		files = append(files, f)
	}
}
