//go:build chaos

// Package chaos_test is execq's adversarial and fault suite: hostile
// commands, escape attempts, hostile requests, and failures of the worker,
// Redis, the sandbox and the container engine, each followed by an
// execution that proves the worker still serves as if nothing had happened.
//
// It runs against a real redis-server and the real Docker engine, with
// `execq worker` child processes built once in TestMain:
//
//	go test -tags chaos -count=1 -timeout 40m ./internal/chaos/
//
// The cases run one at a time: the machine has two cores and several cases
// assert timings. At the end TestMain prints a summary table (and writes it
// to $EXECQ_CHAOS_SUMMARY when set).
package chaos_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/testutil"
)

var (
	// execqBin is the execq binary built for this run; buildErr says why
	// there is none.
	execqBin string
	buildErr error
	// runID makes this run's worker names (and so its container labels)
	// unique on a shared engine.
	runID string
	// sandboxRuntime is the runtime every worker of the run uses
	// ($EXECQ_CHAOS_RUNTIME, agent by default); ociRuntime the engine's
	// runtime under it ($EXECQ_TEST_OCI_RUNTIME, e.g. runsc).
	sandboxRuntime = envOr("EXECQ_CHAOS_RUNTIME", "agent")
	ociRuntime     = os.Getenv("EXECQ_TEST_OCI_RUNTIME")
	rec            = &recorder{}
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	runID = newToken()[:6]
	dir, err := os.MkdirTemp("", "execq-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	execqBin = filepath.Join(dir, "execq")
	start := time.Now()
	buildErr = buildExecq(execqBin)
	rec.buildTook = time.Since(start)
	code := m.Run()
	rec.leaked = sweepContainers()
	summary := rec.summary()
	fmt.Print(summary)
	if path := os.Getenv("EXECQ_CHAOS_SUMMARY"); path != "" {
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(summary), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: write summary:", err)
		}
	}
	_ = os.RemoveAll(dir)
	if rec.leaked > 0 && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// buildExecq builds ./cmd/execq into bin, without the race detector: the
// workers under test run as they are deployed; and the static agent beside
// it, where the workers find it.
func buildExecq(bin string) error {
	goBin := testutil.GoTool()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, b := range []struct{ out, pkg string }{
		{bin, "./cmd/execq"},
		{filepath.Join(filepath.Dir(bin), "execq-agent"), "./cmd/execq-agent"},
	} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", b.out, b.pkg)
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s: %v: %s", b.pkg, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// needBinary fails the test when the execq binary could not be built.
func needBinary(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("no execq binary: %v", buildErr)
	}
}

// ownerPrefix begins the name of every worker this run starts.
func ownerPrefix() string { return "chaos-" + runID + "-" }

// sweepContainers removes whatever container a worker of this run left on
// the engine and returns how many there were: a safety net, every test
// checks its own.
func sweepContainers() int {
	c, err := client.NewClientWithOpts(client.WithHostFromEnv(), client.WithAPIVersionNegotiation())
	if err != nil {
		return 0
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true")),
	})
	if err != nil {
		return 0
	}
	n := 0
	for _, ctr := range list {
		if strings.HasPrefix(ctr.Labels[docker.LabelOwner], ownerPrefix()) {
			n++
			fmt.Fprintf(os.Stderr, "chaos: container %.12s of %s left behind; removing it\n", ctr.ID, ctr.Labels[docker.LabelOwner])
			_ = c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true})
		}
	}
	return n
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recorder collects, across the run, what each case tried and measured.
type recorder struct {
	mu        sync.Mutex
	cases     []*caseRecord
	buildTook time.Duration
	leaked    int
}

// caseRecord is one case: its outcome and its figures.
type caseRecord struct {
	group    string
	name     string
	fault    bool // a fault was injected (a worker, Redis, a container or the engine failed)
	passed   bool
	skipped  bool
	figures  []string
	recovery []string
}

// track records the case t belongs to; its outcome is taken when t ends.
// fault marks cases that inject a failure.
func track(t *testing.T, group string, fault bool) *caseRecord {
	c := &caseRecord{group: group, name: t.Name(), fault: fault}
	rec.mu.Lock()
	rec.cases = append(rec.cases, c)
	rec.mu.Unlock()
	// Registered first, so it runs last: after the cleanups that check for
	// leaks.
	t.Cleanup(func() {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		c.passed = !t.Failed() && !t.Skipped()
		c.skipped = t.Skipped()
	})
	return c
}

// figure logs a measurement and keeps it for the summary.
func (c *caseRecord) figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	rec.mu.Lock()
	c.figures = append(c.figures, s)
	rec.mu.Unlock()
}

// recovered logs a recovery time and keeps it for the summary's recovery
// section.
func (c *caseRecord) recovered(t *testing.T, what string, d time.Duration) {
	t.Helper()
	s := fmt.Sprintf("%s: %s", what, d.Round(10*time.Millisecond))
	t.Log(s)
	rec.mu.Lock()
	c.recovery = append(c.recovery, s)
	rec.mu.Unlock()
}

func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	oci := ociRuntime
	if oci == "" {
		oci = "the engine's default"
	}
	fmt.Fprintf(&b, "\n==== execq chaos summary (run %s, runtime %s on %s, execq built in %s) ====\n", runID, sandboxRuntime, oci, r.buildTook.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tCASE\tRESULT\tFAULT\tMEASURED")
	tried, passed, failed, skipped, faults, survived := 0, 0, 0, 0, 0, 0
	for _, c := range r.cases {
		tried++
		result := "FAIL"
		switch {
		case c.skipped:
			result = "skip"
			skipped++
		case c.passed:
			result = "pass"
			passed++
		default:
			failed++
		}
		fault := ""
		if c.fault {
			faults++
			fault = "injected"
			if c.passed {
				survived++
				fault = "survived"
			}
		}
		figures := append([]string(nil), c.figures...)
		figures = append(figures, c.recovery...)
		first := ""
		if len(figures) > 0 {
			first = figures[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.group, c.name, result, fault, first)
		for _, f := range figures[min(1, len(figures)):] {
			fmt.Fprintf(tw, "\t\t\t\t%s\n", f)
		}
	}
	tw.Flush()
	fmt.Fprintf(&b, "\ncases tried %d: passed %d, failed %d, skipped %d; faults injected %d, survived %d\n",
		tried, passed, failed, skipped, faults, survived)
	var recovery []string
	for _, c := range r.cases {
		for _, f := range c.recovery {
			recovery = append(recovery, c.name+": "+f)
		}
	}
	sort.Strings(recovery)
	if len(recovery) > 0 {
		fmt.Fprintln(&b, "recovery times measured:")
		for _, f := range recovery {
			fmt.Fprintln(&b, "  "+f)
		}
	}
	fmt.Fprintf(&b, "containers left behind at the end: %d\n", r.leaked)
	return b.String()
}
