package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execq/execq/internal/dashboard"
	"github.com/execq/execq/internal/metrics"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// dashboardFlags configure the dashboard; `execq up` shares them.
type dashboardFlags struct {
	addr         string
	readOnly     bool
	basicAuth    string
	allowedHosts []string
}

func (f *dashboardFlags) register(fs *pflag.FlagSet, addrFlag, defaultAddr, usage string) {
	fs.StringVar(&f.addr, addrFlag, defaultAddr, usage)
	fs.BoolVar(&f.readOnly, "read-only", false, "dashboard: view only, no actions on queues or tasks")
	def := os.Getenv("EXECQ_DASHBOARD_AUTH")
	fs.StringVar(&f.basicAuth, "basic-auth", def, "dashboard: require HTTP basic auth USER:PASSWORD (env EXECQ_DASHBOARD_AUTH)")
	fs.StringArrayVar(&f.allowedHosts, "allowed-hosts", nil, "dashboard: host names it answers to besides localhost, IP addresses and the host of its address (repeatable)")
}

// handler builds the dashboard's handler on rdb, serving reg at /metrics
// and health at /healthz (nil: a Redis ping).
func (f *dashboardFlags) handler(client redis.UniversalClient, reg *metrics.Registry, retention time.Duration, health func(context.Context) error, log *slog.Logger) (http.Handler, error) {
	var user, password string
	if f.basicAuth != "" {
		var ok bool
		user, password, ok = strings.Cut(f.basicAuth, ":")
		if !ok || user == "" || password == "" {
			return nil, errors.New("--basic-auth wants USER:PASSWORD")
		}
	}
	return dashboard.New(dashboard.Config{
		Redis:        client,
		Store:        rdb.New(client, tasks.Keys{}, retention),
		Metrics:      reg,
		Health:       health,
		ReadOnly:     f.readOnly,
		User:         user,
		Password:     password,
		AllowedHosts: append([]string{f.addr}, f.allowedHosts...),
		Logger:       log,
	})
}

// serveHTTP serves h on addr until ctx ends, then shuts the server down;
// onShutdown run when the shutdown begins (to end long-lived responses,
// which Shutdown would otherwise wait for).
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger, onShutdown ...func()) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	for _, f := range onShutdown {
		srv.RegisterOnShutdown(f)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "addr", addr, "err", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}
	return stop, nil
}

func newDashboardCommand(rf *redisFlag) *cobra.Command {
	var f dashboardFlags
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the asynqmon dashboard and queue metrics",
		Long: `Serves the asynqmon UI under /monitoring/, showing each execution's image,
command, status, exit code, duration and output head, and Prometheus metrics of
the queues under /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			client, err := dialRedis(rf.url)
			if err != nil {
				return err
			}
			defer client.Close()
			reg := metrics.NewRegistry()
			if err := reg.Register(metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(client))); err != nil {
				return err
			}
			h, err := f.handler(client, reg, 0, nil, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			stopHTTP, err := serveHTTP(ctx, f.addr, h, log)
			if err != nil {
				return err
			}
			log.Info("dashboard serving", "url", "http://"+f.addr+dashboard.RootPath+"/", "metrics", "http://"+f.addr+"/metrics")
			<-ctx.Done()
			stopHTTP()
			return nil
		},
	}
	f.register(cmd.Flags(), "addr", "127.0.0.1:8080", "address of the dashboard (/monitoring/) and metrics (/metrics)")
	return cmd
}
