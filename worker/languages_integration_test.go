//go:build integration

package worker_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

const helloC = `#include <stdio.h>

int main(void) {
	printf("hello from %s\n", "c");
	return 0;
}
`

// TestLanguageImages runs each image make language-images builds through
// a real worker on the default runtime: its language's hello world, as a
// user other than root, from an image with no setuid or setgid file.
func TestLanguageImages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		image  string
		req    tasks.ExecRequest
		stdout string
	}{
		{"execq-python:latest", tasks.ExecRequest{Cmd: []string{"python3", "-c", "print(6*7)"}}, "42\n"},
		{"execq-python:latest", tasks.ExecRequest{Cmd: []string{"python3", "-c", "import numpy, pytest, venv; print(int(numpy.arange(7).sum()))"}}, "21\n"},
		{"execq-python:latest", tasks.ExecRequest{Cmd: []string{"sh", "-c", "python3 -m venv env && env/bin/python -c 'import sys; print(sys.prefix)'"}}, "/workspace/env\n"},
		{"execq-node:latest", tasks.ExecRequest{Cmd: []string{"node", "-e", "console.log(6*7)"}}, "42\n"},
		{"execq-c:latest", tasks.ExecRequest{
			Cmd:   []string{"sh", "-c", "gcc -Wall -Werror -o hello hello.c && ./hello"},
			Files: []tasks.File{{Path: "hello.c", Content: []byte(helloC)}},
		}, "hello from c\n"},
	}
	cli := testutil.Docker(t)
	for _, c := range cases {
		requireImage(t, cli, c.image)
	}
	b := setupIntegration(t, setupOptions{runtime: agentrt.Name})
	for _, c := range cases {
		req := c.req
		req.Image = c.image
		req.Timeout = 30 * time.Second
		res := b.run(t, req)
		if res.Status != tasks.StatusSucceeded || res.Stdout != c.stdout || res.Stderr != "" {
			t.Errorf("%s %q: status %s exit %d stdout %q stderr %q error %q; want stdout %q",
				c.image, req.Cmd, res.Status, res.ExitCode, res.Stdout, res.Stderr, res.Error, c.stdout)
		}
	}
	for _, image := range []string{"execq-python:latest", "execq-node:latest", "execq-c:latest"} {
		res := b.run(t, tasks.ExecRequest{Image: image, Cmd: []string{"id", "-u"}})
		uid, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
		if res.Status != tasks.StatusSucceeded || err != nil || uid == 0 {
			t.Errorf("%s: id -u: status %s stdout %q stderr %q; want a uid other than 0", image, res.Status, res.Stdout, res.Stderr)
		}
		if files := setIDFiles(t, cli, image); len(files) > 0 {
			t.Errorf("%s holds setuid or setgid files: %s", image, strings.Join(files, ", "))
		}
	}
}

// requireImage fails the test in CI when image is missing, and skips it
// elsewhere.
func requireImage(t *testing.T, cli *client.Client, image string) {
	t.Helper()
	ctx := testutil.Context(t, 10*time.Second)
	_, err := cli.ImageInspect(ctx, image)
	if err == nil {
		return
	}
	if !errdefs.IsNotFound(err) {
		t.Fatalf("inspect %s: %v", image, err)
	}
	testutil.Missing(t, "%s is missing: make language-images builds it (scripts/setup.sh --test does in CI)", image)
}

// setIDFiles lists the files of image's filesystem with a setuid or setgid
// bit, read from an export of a container that never starts, so that
// nothing (no unreadable directory) is hidden from the check.
func setIDFiles(t *testing.T, cli *client.Client, image string) []string {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"true"}, NetworkDisabled: true}, nil, nil, nil, "")
	if err != nil {
		t.Fatalf("create a container of %s: %v", image, err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	rc, err := cli.ContainerExport(ctx, c.ID)
	if err != nil {
		t.Fatalf("export %s: %v", image, err)
	}
	defer rc.Close()
	var found []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return found
		}
		if err != nil {
			t.Fatalf("read the export of %s: %v", image, err)
		}
		if hdr.Typeflag != tar.TypeSymlink && hdr.Mode&(0o4000|0o2000) != 0 {
			found = append(found, hdr.Name)
		}
	}
}
