package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
)

// The agent reaches every container from a volume of the engine that holds
// its binary, mounted read-only: nothing of the image changes, no registry
// is asked, and it works the same whether the worker runs on the host or in
// a container of its own (the volume is the engine's, not a path of the
// worker's file system). The volume is named after the binary's digest, so
// that workers of different versions never share one.
const (
	agentVolumePrefix = "execq-agent-"
	labelAgentDigest  = "execq.agent.sha256"
)

// The agent binary's mode. Under runc, the sandbox's user may execute it
// but not read it: the kernel makes a process of a binary its user cannot
// read non-dumpable from its exec on, so a process of that user can neither
// ptrace it nor open its memory or descriptors. The docker-exec runtime's
// helpers run as the user whose leftovers they kill; this is what keeps a
// leftover from rewriting one into reporting a clean reset. (It can still
// stop one with a signal, which times the reset out and replaces the
// container.) gVisor executes only what its user can read, and the agent's
// launcher runs as the user there: its volume holds a readable binary, and
// only the agent runtime, whose helpers never run as the user, is allowed
// on it.
const (
	agentModeExecOnly = 0o711
	agentModeReadable = 0o755
)

// agentVolume fills and names the volume of one agent binary.
type agentVolume struct {
	client Client
	name   string
	digest string
	binary []byte
	mode   os.FileMode

	mu    sync.Mutex
	ready bool
}

func newAgentVolume(c Client, path string, readable bool) (*agentVolume, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the agent binary: %w", err)
	}
	if err := checkStatic(b); err != nil {
		return nil, fmt.Errorf("the agent binary %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:8])
	v := &agentVolume{client: c, name: agentVolumePrefix + digest, digest: digest, binary: b, mode: agentModeExecOnly}
	if readable {
		v.name, v.mode = v.name+"-readable", agentModeReadable
	}
	return v, nil
}

// checkStatic refuses a binary that is no ELF executable or that needs a
// dynamic loader: the agent runs in images that may have no libc, where the
// kernel would refuse it with a bare "no such file or directory".
func checkStatic(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("it is dynamically linked; build it static (CGO_ENABLED=0 go build ./cmd/execq-agent, as make build does)")
		}
	}
	return nil
}

// ensure returns the volume's name once it holds the binary. imageID is an
// image present on the engine: the container that fills the volume is made
// of it, and never started.
func (v *agentVolume) ensure(ctx context.Context, e *Engine, imageID string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ready {
		return v.name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
	defer cancel()
	if _, err := v.client.VolumeCreate(ctx, volume.CreateOptions{
		Name:   v.name,
		Labels: map[string]string{LabelManaged: "true", labelAgentDigest: v.digest},
	}); err != nil {
		return "", fmt.Errorf("create the agent volume: %w", err)
	}
	created, err := v.client.ContainerCreate(ctx,
		&container.Config{Image: imageID, Entrypoint: []string{"/execq-never-started"}, Labels: map[string]string{LabelManaged: "true", LabelOwner: e.cfg.Owner}},
		&container.HostConfig{
			NetworkMode: "none",
			Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: v.name, Target: "/agent"}},
		}, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("create a container to fill the agent volume: %w", err)
	}
	defer func() { _ = e.Remove(context.WithoutCancel(ctx), created.ID) }()
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "execq-agent", Mode: int64(v.mode), Size: int64(len(v.binary))})
	_, _ = tw.Write(v.binary)
	_ = tw.Close()
	// Workers (and test processes) that start together fill the same
	// volume at once. One at a time writes it, holding a lock: a binary
	// found whole is never written again, so no container ever runs one
	// half rewritten.
	var problem error
	for {
		held, err := v.holds(ctx, created.ID)
		if err != nil {
			return "", err
		}
		if held == nil {
			v.ready = true
			return v.name, nil
		}
		problem = held
		unlock, err := v.lock(ctx, e, imageID)
		if err != nil {
			return "", fmt.Errorf("fill the agent volume: %w (%v)", err, problem)
		}
		if unlock != nil {
			err := v.fill(ctx, created.ID, archive.Bytes())
			unlock()
			if err != nil {
				return "", fmt.Errorf("fill the agent volume: %w", err)
			}
			continue
		}
		select {
		case <-time.After(time.Duration(50+rand.IntN(100)) * time.Millisecond):
		case <-ctx.Done():
			return "", fmt.Errorf("fill the agent volume: %w (%v)", ctx.Err(), problem)
		}
	}
}

// lock takes the lock on filling the volume: a container named after it,
// never started, which the engine makes once. It returns nil when another
// holds it; a lock older than the API timeout is of a filler that died,
// and is removed.
func (v *agentVolume) lock(ctx context.Context, e *Engine, imageID string) (unlock func(), err error) {
	name := "execq-fill-" + v.name
	created, err := v.client.ContainerCreate(ctx,
		&container.Config{Image: imageID, Entrypoint: []string{"/execq-never-started"}, Labels: map[string]string{LabelManaged: "true", LabelOwner: e.cfg.Owner}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	switch {
	case err == nil:
		return func() { _ = e.Remove(context.WithoutCancel(ctx), created.ID) }, nil
	case !errdefs.IsConflict(err):
		return nil, fmt.Errorf("create the lock %s: %w", name, err)
	}
	held, err := v.client.ContainerInspect(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect the lock %s: %w", name, err)
	}
	if at, perr := time.Parse(time.RFC3339Nano, held.Created); perr == nil && time.Since(at) > e.cfg.APITimeout {
		_ = e.Remove(ctx, held.ID)
	}
	return nil, nil
}

// fill writes the binary into the volume unless it holds it whole, which
// a filler before this one may have done.
func (v *agentVolume) fill(ctx context.Context, containerID string, archive []byte) error {
	held, err := v.holds(ctx, containerID)
	if err != nil || held == nil {
		return err
	}
	if err := v.client.CopyToContainer(ctx, containerID, "/agent", bytes.NewReader(archive), container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("%v; copy: %w", held, err)
	}
	return nil
}

// holds returns nil when the volume, as the container sees it, holds the
// binary with its mode, and what differs otherwise; the error is for a
// volume it cannot look into.
func (v *agentVolume) holds(ctx context.Context, containerID string) (differs, err error) {
	st, err := v.client.ContainerStatPath(ctx, containerID, "/agent/execq-agent")
	switch {
	case errdefs.IsNotFound(err):
		return errors.New("no agent binary in the volume"), nil
	case err != nil:
		return nil, fmt.Errorf("look into the agent volume: %w", err)
	case st.Size != int64(len(v.binary)) || st.Mode.Perm() != v.mode:
		return fmt.Errorf("the agent binary in the volume has %d bytes and mode %o, want %d and %o", st.Size, st.Mode.Perm(), len(v.binary), v.mode), nil
	}
	return nil, nil
}

// RemoveStaleAgentVolumes removes the agent volumes of other agent
// binaries that no container uses; the engine refuses to remove one in
// use, which is left.
func (e *Engine) RemoveStaleAgentVolumes(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
	defer cancel()
	list, err := e.client.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", labelAgentDigest))})
	if err != nil {
		return
	}
	for _, vol := range list.Volumes {
		if vol.Name != e.agent.name && strings.HasPrefix(vol.Name, agentVolumePrefix) {
			_ = e.client.VolumeRemove(ctx, vol.Name, false)
		}
	}
}
