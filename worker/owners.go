package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/execq/execq/internal/rdb"
)

// DefaultName is a worker name unique to this process: host-pid-random.
func DefaultName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "worker"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:4])
}

// ownerAlive reports whether the worker that owns some containers is alive.
// A worker of this host, named as DefaultName names it, is alive while its
// process is, whatever Redis it uses. Any other is judged by its heartbeat
// in this deployment's Redis, alive when it beat at since or later; one the
// deployment does not know belongs to another deployment and counts as
// alive.
func ownerAlive(ctx context.Context, store *rdb.Store, owner string, since time.Time) (bool, error) {
	if pid, ok := localPID(owner); ok {
		return processExists(pid), nil
	}
	return store.WorkerAlive(ctx, owner, since)
}

// localPID returns the PID in owner when it names a process of this host.
func localPID(owner string) (int, bool) {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(owner, host+"-")
	if host == "" || !ok {
		return 0, false
	}
	pidText, random, ok := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 || len(random) != 4 {
		return 0, false
	}
	return pid, true
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
