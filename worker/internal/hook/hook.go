// Package hook lets the worker's own tests, and worker/workertest, give a
// worker a sandbox runtime that is not one of execq's Docker runtimes: the
// runtime contract is internal, so the public worker.Config cannot carry
// one. Only code under worker/ can import it.
package hook

import "github.com/execq/execq/internal/sandbox"

// SetRuntime makes cfg, a *worker.Config, use rt. Package worker sets it
// when it is initialized.
var SetRuntime func(cfg any, rt sandbox.Runtime)
