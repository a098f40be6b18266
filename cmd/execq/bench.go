package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/execq/execq/internal/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		cfg        bench.Config
		bigOutput  string
		inputSizes []string
		jsonPath   string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure execq against a bare Docker exec, in one run",
		Long: `Measures, in one run on this machine with one image: a bare Docker exec of
true through the Go client and the Docker CLI (the baselines), and for each
runtime its own cost per execution (run and verified reset), execq end to end
(Submit→Wait, Submit→first output byte, execq run), throughput at several worker
concurrencies with the worker's and Redis's costs per execution; then a burst,
one execution with a big output, executions with a large stdin, and execq's own
memory costs; and where the Python image exists, the throughput of python3 -c
pass per runtime against its floor (the command looped in as many hardened
containers), and the latency and throughput of a small pytest run against
theirs. --phases runs some of these only. It starts its own
redis-server and real worker processes, prints a markdown table and writes the
figures as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("redis") {
				return exitWith(exitExecqFailed, "bench starts a redis-server of its own; it takes no --redis")
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Exe = exe
			cfg.Progress = os.Stderr
			if cfg.BigOutputBytes, err = parseSize("--big-output", bigOutput); err != nil {
				return err
			}
			for _, s := range inputSizes {
				n, err := parseSize("--input-sizes", s)
				if err != nil {
					return err
				}
				cfg.InputSizes = append(cfg.InputSizes, n)
			}
			report, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			report.Markdown(os.Stdout)
			if jsonPath == "" {
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
				return err
			}
			b, err := json.MarshalIndent(report, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "bench: figures written to %s\n", jsonPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Image, "image", "execq-sandbox:latest", "sandbox image")
	f.StringVar(&cfg.PythonImage, "python-image", "execq-python:latest", "image of the python3 -c pass figures (left out when it is missing; make language-images builds it)")
	f.IntVar(&cfg.Samples, "samples", 100, "sample size of each sequential latency")
	f.IntVar(&cfg.Throughput, "throughput", 2000, "executions per throughput run of the agent runtime (a quarter of them for docker-exec)")
	f.StringSliceVar(&cfg.Runtimes, "runtimes", []string{"agent", "docker-exec"}, "runtimes to measure, the default one first")
	f.IntSliceVar(&cfg.Concurrency, "concurrency", []int{1, 4, 16}, "worker concurrencies of the throughput runs")
	f.IntVar(&cfg.Burst, "burst", 100, "executions submitted at once")
	f.StringVar(&bigOutput, "big-output", "100000000", "bytes the big-output execution writes (sizes like 100m are powers of 1024)")
	f.StringSliceVar(&inputSizes, "input-sizes", []string{"10m", "5m"}, "stdin sizes of the large-input phase (cat >/dev/null)")
	f.IntVar(&cfg.InputSamples, "input-samples", 10, "sample size of each large input")
	f.StringVar(&jsonPath, "json", "bench-results/latest.json", "write the figures as JSON here (empty: do not)")
	f.StringSliceVar(&cfg.Phases, "phases", bench.AllPhases, "phases to run: core (the baseline and everything on true), python (python3 -c pass), pytest (a small pytest run), http (the HTTP API against the Go client, 1,000 event streams on one serve process, a burst of 500 POSTs), scale (true on 1, 2 and 3 worker processes, and its Redis costs)")
	f.IntVar(&cfg.PytestThroughput, "pytest-throughput", 100, "executions per throughput run of the pytest figures, on either runtime")
	f.IntVar(&cfg.PytestSamples, "pytest-samples", 20, "sample size of the pytest latency")
	f.StringArrayVar(&cfg.WorkerArgs, "worker-arg", nil, "add this argument to every worker's command line, e.g. --worker-arg=--task-check-interval=2ms")
	return cmd
}
