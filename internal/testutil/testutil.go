// Package testutil starts the real parts integration tests run against: a
// redis-server of the test's own on a free loopback port, and the Docker
// engine with the sandbox image.
//
// When CI is set (or EXECQ_INTEGRATION=1), a missing part fails the test;
// elsewhere it skips the test and says why.
package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/harness"
)

// SandboxImage is the image integration tests run commands in.
const SandboxImage = "execq-sandbox:latest"

// Required reports whether integration parts must be present: in CI, or
// when EXECQ_INTEGRATION=1.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("EXECQ_INTEGRATION") == "1"
}

// Missing ends a test that lacks something it needs: it fails where
// integration parts are required (Required), and skips, saying what is
// missing, elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("integration test needs it: %s", msg)
	}
	t.Skipf("skipped, %s (set EXECQ_INTEGRATION=1 to fail instead)", msg)
}

// Redis is a redis-server started for one test.
type Redis struct {
	Addr   string
	URL    string
	Client *redis.Client
	srv    *harness.RedisServer
}

// RedisOptions configure a test's redis-server.
type RedisOptions struct {
	// AOF turns the append-only file on (fsync always), so that a Stop and
	// Start keep the data.
	AOF bool
}

// StartRedis starts a redis-server on a free loopback port, with no
// persistence and maxmemory-policy noeviction, and stops it when the test
// ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith starts a redis-server as StartRedis does, with opts.
func StartRedisWith(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	srv, err := harness.StartRedis(Context(t, time.Minute), harness.RedisConfig{Dir: t.TempDir(), AOF: opts.AOF})
	if errors.Is(err, harness.ErrNoRedisServer) {
		Missing(t, "redis-server is not installed (apt-get install -y redis-server)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &Redis{Addr: srv.Addr, URL: srv.URL, Client: srv.Client, srv: srv}
}

// Start starts the server again after Stop, on the same port and
// directory.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	if err := r.srv.Start(Context(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// Stop shuts the server down as SIGTERM does (with the AOF on, it keeps
// the data), and kills it after 10s.
func (r *Redis) Stop() { r.srv.Stop() }

// Docker returns a client of the local engine, with the sandbox image
// present (it is built from the repository's script when missing).
func Docker(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHostFromEnv(), client.WithAPIVersionNegotiation())
	if err != nil {
		Missing(t, "no Docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		Missing(t, "the Docker engine does not answer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ensureImage(t, c)
	return c
}

var buildImage sync.Once

func ensureImage(t testing.TB, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ImageInspect(ctx, SandboxImage); err == nil {
		return
	}
	var out []byte
	var err error
	buildImage.Do(func() {
		out, err = exec.Command(filepath.Join(RepoRoot(), "scripts", "sandbox-image.sh"), SandboxImage).CombinedOutput()
	})
	if err != nil {
		Missing(t, "the sandbox image %s could not be built: %v: %s", SandboxImage, err, strings.TrimSpace(string(out)))
	}
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// LeftoverScript prints "process: PID NAME" for every process of the
// shell's own user in the sandbox but the shell running it, reading /proc
// with builtins only (a ps pipeline would list its own members, some of
// them mid-exec).
const LeftoverScript = `
while read -r k v _; do [ "$k" = Uid: ] && { me=$v; break; }; done </proc/$$/status
for s in /proc/[0-9]*/status; do
	[ "$s" = "/proc/$$/status" ] && continue
	name= puid=
	while read -r k v _; do
		case "$k" in
		Name:) name=$v ;;
		Uid:) puid=$v; break ;;
		esac
	done 2>/dev/null <"$s"
	[ "$puid" = "$me" ] && echo "process: ${s#/proc/} $name"
done
true
`
