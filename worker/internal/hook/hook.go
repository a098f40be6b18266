// Package hook lets the worker's own tests, and worker/workertest, give a
// worker a clock of their own and a sandbox runtime that is not one of
// execq's Docker runtimes: the clock and the runtime contract are internal,
// so the public worker.Config cannot carry them. Only code under worker/
// can import it.
package hook

import (
	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/sandbox"
)

// SetRuntime makes cfg, a *worker.Config, use rt. Package worker sets it
// when it is initialized.
var SetRuntime func(cfg any, rt sandbox.Runtime)

// SetClock makes cfg, a *worker.Config, use c for its time and its
// background work's tickers. Package worker sets it when it is
// initialized.
var SetClock func(cfg any, c clock.Clock)
