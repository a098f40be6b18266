package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execq/execq/internal/dashboard"
	"github.com/execq/execq/internal/metrics"
	"github.com/execq/execq/internal/retry"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/webguard"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// workerFlags configure a worker; `execq up` shares them.
type workerFlags struct {
	name            string
	image           string
	poolSize        int
	maxSessions     int
	warm            string
	languages       languagesFlag
	concurrency     int
	queues          string
	checkInterval   time.Duration
	shutdownTimeout time.Duration
	retention       time.Duration
	maxUses         int
	runtime         string
	agentBinary     string
	agentChannel    string
	allowedImages   []string
	uidBase         int
	uidCount        int
	ociRuntime      string
	workspaceSize   string
	tmpSize         string
	cgroupRoot      string
	defaultTimeout  time.Duration
	maxTimeout      time.Duration
	defaultMemory   string
	maxMemory       string
	defaultCPUs     float64
	maxCPUs         float64
	defaultPids     int64
	maxPids         int64
	defaultOutput   string
	maxOutput       string
	metricsAddr     string
	heartbeat       time.Duration
	deadAfter       time.Duration
	reconcile       time.Duration
	logFormat       string
	logLevel        string
}

func (f *workerFlags) register(fs *pflag.FlagSet) {
	limits := tasks.DefaultLimits()
	fs.StringVar(&f.name, "name", "", "worker name in results, logs and container labels (default host-pid-random)")
	fs.StringVar(&f.image, "image", worker.DefaultImage, "default sandbox image, kept warm")
	fs.IntVar(&f.poolSize, "pool-size", worker.DefaultPoolSize, "containers the worker holds")
	fs.IntVar(&f.maxSessions, "max-sessions", worker.DefaultMaxSessions, "sessions the worker holds at once, each with a container of its own beside --pool-size (0: none)")
	fs.StringVar(&f.warm, "warm", "", `warm containers to keep, by image, within --pool-size: "python=4,node=1,default=2" (a language of the catalogue, default for --image, or an image reference); the other slots take containers of images with none idle (default: --pool-size of --image)`)
	f.languages.register(fs)
	fs.IntVar(&f.concurrency, "concurrency", 0, "executions at once (default the pool size)")
	fs.StringVar(&f.queues, "queues", tasks.DefaultQueue, `queues to serve, with priorities: "default" or "high:6,default:3,low:1"`)
	fs.DurationVar(&f.checkInterval, "task-check-interval", worker.DefaultTaskCheckInterval, "how often empty queues are polled")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "grace period for running executions at shutdown")
	fs.DurationVar(&f.retention, "retention", tasks.DefaultRetention, "how long results and output streams are kept")
	fs.IntVar(&f.maxUses, "max-uses", worker.DefaultMaxUses, "executions a container serves before it is replaced")
	fs.StringVar(&f.runtime, "runtime", worker.RuntimeAgent, `how commands run in a sandbox: "agent" (execq's agent inside each container) or "docker-exec" (one docker exec per step)`)
	fs.StringVar(&f.agentBinary, "agent", "", "path of the execq-agent binary mounted into the sandboxes (default: beside this executable, then on PATH)")
	fs.StringVar(&f.agentChannel, "agent-channel", "", `how the worker reaches the agents: "socket" (a unix socket in each sandbox's network namespace; needs the host's PIDs and CAP_SYS_ADMIN), "attach" (the container's stdin and stdout, through the engine); default the socket where it can be reached, else attach`)
	fs.StringArrayVar(&f.allowedImages, "allowed-images", nil, `images requests may name besides --image and the images execq builds: "python" (any tag), "python:3.*" (repeatable)`)
	fs.IntVar(&f.uidBase, "uid-base", docker.DefaultUIDBase, "first uid of the range sandboxes run commands as (one uid per container of the engine)")
	fs.IntVar(&f.uidCount, "uid-count", docker.DefaultUIDCount, "size of that range")
	fs.StringVar(&f.ociRuntime, "oci-runtime", "", `container runtime, e.g. "runsc" (default the engine's)`)
	fs.StringVar(&f.workspaceSize, "workspace-size", sizeText(docker.DefaultWorkspaceBytes), "size of each container's /workspace tmpfs")
	fs.StringVar(&f.tmpSize, "tmp-size", sizeText(docker.DefaultTmpBytes), "size of each container's /tmp tmpfs")
	fs.StringVar(&f.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "where the host's cgroups are mounted, for cpu and memory accounting")
	fs.DurationVar(&f.defaultTimeout, "default-timeout", limits.DefaultTimeout, "timeout of requests that give none")
	fs.DurationVar(&f.maxTimeout, "max-timeout", limits.MaxTimeout, "largest timeout a request may ask for")
	fs.StringVar(&f.defaultMemory, "default-memory", sizeText(limits.DefaultMemoryBytes), "memory limit of requests that give none")
	fs.StringVar(&f.maxMemory, "max-memory", sizeText(limits.MaxMemoryBytes), "largest memory limit a request may ask for")
	fs.Float64Var(&f.defaultCPUs, "default-cpus", limits.DefaultCPUs, "CPUs of requests that give none")
	fs.Float64Var(&f.maxCPUs, "max-cpus", limits.MaxCPUs, "most CPUs a request may ask for")
	fs.Int64Var(&f.defaultPids, "default-pids", limits.DefaultPids, "process limit of requests that give none")
	fs.Int64Var(&f.maxPids, "max-pids", limits.MaxPids, "largest process limit a request may ask for")
	fs.StringVar(&f.defaultOutput, "default-max-output", sizeText(limits.DefaultOutputBytes), "output kept per stream for requests that give no cap")
	fs.StringVar(&f.maxOutput, "max-output", sizeText(limits.MaxOutputBytes), "largest output cap a request may ask for")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics (/metrics), health (/healthz) and Go profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:9090 (default off; execq up serves metrics and health with the dashboard)")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", worker.DefaultHeartbeat, "how often the worker records in Redis that it is alive")
	fs.DurationVar(&f.deadAfter, "dead-after", worker.DefaultDeadAfter, "how long after its last heartbeat a worker is taken for dead and its containers removed")
	fs.DurationVar(&f.reconcile, "reconcile-interval", 0, "how often the pool compares its containers with the engine's (default --dead-after)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func (f *workerFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", f.logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is neither text nor json", f.logFormat)
}

func (f *workerFlags) limits() (tasks.Limits, error) {
	l := tasks.Limits{
		DefaultTimeout: f.defaultTimeout,
		MaxTimeout:     f.maxTimeout,
		DefaultCPUs:    f.defaultCPUs,
		MaxCPUs:        f.maxCPUs,
		DefaultPids:    f.defaultPids,
		MaxPids:        f.maxPids,
	}
	sizes := []struct {
		flag string
		val  string
		dst  *int64
	}{
		{"--default-memory", f.defaultMemory, &l.DefaultMemoryBytes},
		{"--max-memory", f.maxMemory, &l.MaxMemoryBytes},
		{"--default-max-output", f.defaultOutput, &l.DefaultOutputBytes},
		{"--max-output", f.maxOutput, &l.MaxOutputBytes},
	}
	for _, s := range sizes {
		n, err := parseSize(s.flag, s.val)
		if err != nil {
			return l, err
		}
		*s.dst = n
	}
	l = l.WithDefaults()
	return l, l.Validate()
}

// build makes the worker on the Docker engine, with its metrics in a new
// registry: the worker's, its pool's and the queues'.
func (f *workerFlags) build(rdb redis.UniversalClient, log *slog.Logger) (*worker.Worker, *metrics.Registry, error) {
	limits, err := f.limits()
	if err != nil {
		return nil, nil, err
	}
	queues, err := parseQueues(f.queues)
	if err != nil {
		return nil, nil, err
	}
	workspace, err := parseSize("--workspace-size", f.workspaceSize)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := parseSize("--tmp-size", f.tmpSize)
	if err != nil {
		return nil, nil, err
	}
	languages, err := f.languages.catalogue()
	if err != nil {
		return nil, nil, err
	}
	var warm []worker.WarmImage
	if f.warm != "" {
		if warm, err = parseWarm(f.warm, languages, f.image, f.poolSize); err != nil {
			return nil, nil, err
		}
	}
	reg := metrics.NewRegistry()
	observer := metrics.NewWorker(reg)
	cfg := worker.Config{
		Redis:             rdb,
		Name:              f.name,
		Image:             f.image,
		AllowedImages:     f.allowedImages,
		PoolSize:          f.poolSize,
		MaxSessions:       cmp.Or(f.maxSessions, -1),
		Warm:              warm,
		Languages:         languages,
		Concurrency:       f.concurrency,
		Queues:            queues,
		TaskCheckInterval: f.checkInterval,
		Limits:            limits,
		Retention:         f.retention,
		MaxUses:           f.maxUses,
		ShutdownTimeout:   f.shutdownTimeout,
		Intervals:         worker.Intervals{Heartbeat: f.heartbeat, DeadAfter: f.deadAfter, Reconcile: f.reconcile},
		Sandbox: worker.SandboxConfig{
			Runtime:        f.runtime,
			AgentBinary:    f.agentBinary,
			AgentChannel:   f.agentChannel,
			OCIRuntime:     f.ociRuntime,
			WorkspaceBytes: workspace,
			TmpBytes:       tmp,
			CgroupRoot:     f.cgroupRoot,
			UIDBase:        f.uidBase,
			UIDCount:       f.uidCount,
		},
		Logger:   log,
		Observer: observer,
	}
	w, err := worker.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	err = reg.Register(
		metrics.NewPoolCollector(func() metrics.PoolCounts {
			s := w.PoolStats()
			counts := metrics.PoolCounts{Idle: s.Idle, Busy: s.Busy, Resetting: s.Resetting, Creating: s.Creating, ByImage: map[string]metrics.ImageCounts{}}
			for image, is := range s.ByImage {
				counts.ByImage[image] = metrics.ImageCounts(is)
			}
			return counts
		}),
		metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb)),
	)
	return w, reg, err
}

func newWorkerCommand(rf *redisFlag) *cobra.Command {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Serve executions from Redis in warm Docker containers",
		Long: `Serves executions: claims them from the queues, runs each in a warm,
locked-down container of its pool, streams output into Redis and stores the
result. SIGTERM or SIGINT stops it gracefully: running executions get
--shutdown-timeout to finish, then are killed and left to be retried, and the
worker's containers are removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := f.logger()
			if err != nil {
				return err
			}
			rdb, err := dialRedis(rf.url)
			if err != nil {
				return err
			}
			defer rdb.Close()
			w, reg, err := f.build(rdb, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if f.metricsAddr != "" {
				mux := http.NewServeMux()
				mux.Handle("/metrics", reg)
				mux.Handle("/healthz", dashboard.HealthHandler(w.Healthy))
				// Profiles, for the operator who asks where a worker's time
				// goes; behind the Host guard so a rebinding page cannot
				// read them. Metrics stay open to scrapers that use names.
				mux.Handle("/debug/pprof/", webguard.Wrap(http.HandlerFunc(pprof.Index), webguard.Config{}))
				mux.Handle("/debug/pprof/profile", webguard.Wrap(http.HandlerFunc(pprof.Profile), webguard.Config{}))
				stopHTTP, err := serveHTTP(ctx, f.metricsAddr, mux, log)
				if err != nil {
					return err
				}
				defer stopHTTP()
			}
			if err := waitForRedis(ctx, rdb, log, redacted(rf.url)); err != nil {
				return err
			}
			return w.Run(ctx)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// waitForRedis pings Redis until it answers or ctx ends, saying so in the
// log, so that a worker started before Redis waits for it.
func waitForRedis(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger, where string) error {
	b := retry.Backoff{First: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		wait := b.Next()
		log.Warn("redis is not reachable; retrying", "redis", where, "in", wait, "err", err)
		if retry.Sleep(ctx, wait) != nil {
			return fmt.Errorf("redis at %s: %w", where, err)
		}
	}
}
