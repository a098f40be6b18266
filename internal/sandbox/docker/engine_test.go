//go:build integration

package docker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/testutil"
)

func newEngine(t *testing.T, owner string) *docker.Engine {
	t.Helper()
	e, err := docker.NewEngine(testutil.Docker(t), docker.Config{Owner: owner, AgentBinary: testutil.AgentBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// idleSpec is a container whose main process is the agent's keepalive.
func idleSpec(img sandbox.Image) docker.Spec {
	return docker.Spec{
		Image:   img,
		Runtime: "test",
		Command: func(uid, gid int, wipe []string) []string { return []string{docker.AgentPath, "idle"} },
		Init:    true,
	}
}

func create(t *testing.T, e *docker.Engine, img sandbox.Image) *docker.Container {
	t.Helper()
	c, err := e.Create(testutil.Context(t, time.Minute), idleSpec(img))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Remove(context.Background(), c.ID()); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	return c
}

func TestResolveImage(t *testing.T) {
	t.Parallel()
	e := newEngine(t, "test-resolve")
	ctx := testutil.Context(t, time.Minute)
	img, err := e.ResolveImage(ctx, testutil.SandboxImage)
	if err != nil || !strings.HasPrefix(img.ID, "sha256:") || img.Ref != testutil.SandboxImage {
		t.Fatalf("ResolveImage(%s) = %+v, %v", testutil.SandboxImage, img, err)
	}
	// An image ID resolves to itself: what runs cannot move with a tag.
	if byID, err := e.ResolveImage(ctx, img.ID); err != nil || byID.ID != img.ID {
		t.Errorf("ResolveImage(its ID) = %+v, %v", byID, err)
	}
	if _, err := e.ResolveImage(ctx, "execq-no-such-image:v0"); !errors.Is(err, sandbox.ErrImageNotFound) {
		t.Errorf("ResolveImage(missing) = %v, want ErrImageNotFound", err)
	}
	if _, err := e.ResolveImage(ctx, "UPPER/../Case::x"); !errors.Is(err, sandbox.ErrInvalidImage) {
		t.Errorf("ResolveImage(invalid) = %v, want ErrInvalidImage", err)
	}
}

// Workers on one engine, creating at the same moment, never give two
// containers one uid.
func TestEveryContainerHasAUIDOfItsOwn(t *testing.T) {
	t.Parallel()
	engines := []*docker.Engine{newEngine(t, "test-uid-a"), newEngine(t, "test-uid-b"), newEngine(t, "test-uid-c")}
	img, err := engines[0].ResolveImage(testutil.Context(t, time.Minute), testutil.SandboxImage)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var all []*docker.Container
	var wg sync.WaitGroup
	for _, e := range engines {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := create(t, e, img)
				mu.Lock()
				all = append(all, c)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	seen := map[int]string{}
	for _, c := range all {
		if other, ok := seen[c.User()]; ok {
			t.Errorf("containers %s and %s both run as uid %d", docker.Short(other), docker.Short(c.ID()), c.User())
		}
		seen[c.User()] = c.ID()
		if c.User() < docker.DefaultUIDBase || c.User() >= docker.DefaultUIDBase+docker.DefaultUIDCount || c.Group() != c.User() {
			t.Errorf("uid:gid %d:%d out of the range", c.User(), c.Group())
		}
	}
}

// The agent's volume is made once per binary and shared by the
// containers.
func TestAgentVolumeIsShared(t *testing.T) {
	t.Parallel()
	e := newEngine(t, "test-agent-volume")
	img, err := e.ResolveImage(testutil.Context(t, time.Minute), testutil.SandboxImage)
	if err != nil {
		t.Fatal(err)
	}
	create(t, e, img)
	create(t, e, img)
	cli := testutil.Docker(t)
	list, err := cli.VolumeList(testutil.Context(t, time.Minute), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "execq.agent.sha256"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Volumes) == 0 {
		t.Fatalf("no agent volume")
	}
}

// Workers that start together fill the same new agent volume at once: each
// of them gets a container running a whole binary, whatever the others'
// copies are doing.
func TestAgentVolumeFilledByManyAtOnce(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(testutil.AgentBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	// Bytes after the ELF's sections change its digest, not what it runs:
	// a binary no volume holds yet.
	b = append(b, fmt.Sprintf("fill-test-%d", time.Now().UnixNano())...)
	bin := filepath.Join(t.TempDir(), "execq-agent")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:8])
	cli := testutil.Docker(t)
	t.Cleanup(func() {
		ctx := testutil.Context(t, time.Minute)
		list, err := cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "execq.agent.sha256="+digest))})
		if err != nil {
			t.Error(err)
			return
		}
		for _, v := range list.Volumes {
			if err := cli.VolumeRemove(ctx, v.Name, false); err != nil {
				t.Errorf("remove %s: %v", v.Name, err)
			}
		}
	})
	const workers = 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		e, err := docker.NewEngine(cli, docker.Config{Owner: fmt.Sprintf("test-fill-%d", i), AgentBinary: bin})
		if err != nil {
			t.Fatal(err)
		}
		img, err := e.ResolveImage(testutil.Context(t, time.Minute), testutil.SandboxImage)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Start runs the binary from the volume: a half-written one
			// fails to execute.
			c, err := e.Create(testutil.Context(t, 2*time.Minute), idleSpec(img))
			if err != nil {
				errs <- err
				return
			}
			errs <- e.Remove(context.Background(), c.ID())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a worker starting with the others: %v", err)
		}
	}
}
