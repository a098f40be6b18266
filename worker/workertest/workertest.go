// Package workertest starts an execq worker whose sandboxes live in
// memory, for tests of programs that submit executions: they need neither
// Docker nor a sandbox image, only a Redis (miniredis does). The sandboxes
// interpret a few commands instead of running programs:
//
//	echo ARG...          writes the arguments to stdout
//	err ARG...           writes the arguments to stderr
//	cat                  copies stdin to stdout
//	exit N               exits with N
//	sleep DURATION       waits, or until the execution is canceled or times out
//	write N              writes N bytes of 'x' to stdout
//	oom                  ends as if the memory limit killed it
//	ls                   writes the names of the workspace's files to stdout
//
// Any other program is not found.
package workertest

import (
	"context"

	"github.com/execq/execq/internal/sandbox/fake"
	"github.com/execq/execq/worker"
	"github.com/execq/execq/worker/internal/hook"
)

// New returns a worker configured by cfg, with in-memory sandboxes instead
// of cfg.Sandbox's. Start it, and Shutdown it, as any worker.
func New(cfg worker.Config) (*worker.Worker, error) {
	if cfg.Name == "" {
		cfg.Name = worker.DefaultName()
	}
	hook.SetRuntime(&cfg, fake.NewRuntime(cfg.Name))
	return worker.New(cfg)
}

// Start is New and Start in one, for tests.
func Start(ctx context.Context, cfg worker.Config) (*worker.Worker, error) {
	w, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	return w, nil
}
