package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/cobra"

	"github.com/execq/execq/internal/dashboard"
	"github.com/execq/execq/internal/redisaddr"
)

func newUpCommand(rf *redisFlag) *cobra.Command {
	var (
		wf           workerFlags
		df           dashboardFlags
		af           apiFlags
		embeddedAddr string
		dataDir      string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a worker and the dashboard in one process, with a Redis of its own unless --redis is given",
		Long: `Runs a worker and the dashboard in one process. Without --redis (or
EXECQ_REDIS_URL) it uses the Redis already listening on --embedded-addr, or
starts redis-server there with its data (an append-only file) in --data-dir,
so that a restart loses nothing; where redis-server is not installed, it
embeds one that keeps nothing on restart, and says so. It prints the
redis:// URL that clients point at; the default address is the one execq
run looks at by default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := wf.logger()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			url := rf.url
			if !rf.given(cmd) {
				local, err := startLocalRedis(ctx, embeddedAddr, dataDir, log)
				if err != nil {
					return err
				}
				defer local.stop()
				url = local.url
			}
			client, err := dialRedis(url)
			if err != nil {
				return err
			}
			defer client.Close()
			if err := waitForRedis(ctx, client, log, redacted(url)); err != nil {
				return err
			}
			w, reg, err := wf.build(client, log)
			if err != nil {
				return err
			}
			h, err := df.handler(client, reg, wf.retention, w.Healthy, log)
			if err != nil {
				return err
			}
			tokens, err := af.tokens()
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			var onShutdown []func()
			apiURL := "off: no API tokens, and " + df.addr + " is not a loopback address (give --api-token-file or EXECQ_API_TOKENS)"
			if tokens.Len() > 0 || loopback(df.addr) {
				limits, err := wf.limits()
				if err != nil {
					return err
				}
				srv, err := af.build(ctx, client, url, tokens, reg, wf.retention, limits, append([]string{df.addr}, df.allowedHosts...), log)
				if err != nil {
					return err
				}
				defer srv.stop()
				h = withAPI(srv, h)
				onShutdown = append(onShutdown, srv.api.Close)
				apiURL = "http://" + df.addr + "/v1/"
			} else {
				log.Warn("the HTTP API is off: no API tokens, and the dashboard address is not a loopback address", "addr", df.addr)
			}
			stopHTTP, err := serveHTTP(ctx, df.addr, h, log, onShutdown...)
			if err != nil {
				return err
			}
			defer stopHTTP()
			if err := w.Start(ctx); err != nil {
				return err
			}
			self := "execq"
			if p, err := os.Executable(); err == nil {
				self = p
			}
			redisArg := ""
			if url != defaultRedisURL || os.Getenv("EXECQ_REDIS_URL") != "" {
				redisArg = " --redis " + redacted(url)
			}
			fmt.Fprintf(cmd.OutOrStdout(), `execq is up.
  Redis:     %s
  HTTP API:  %s
  Dashboard: http://%s%s/
  Metrics:   http://%s/metrics
Try, in another terminal:
  %s run%s -- sh -c 'echo hi; exit 3'
  %s submit%s -- sh -c 'sleep 1; echo done'    # prints an ID
  %s tail%s ID
`, redacted(url), apiURL, df.addr, dashboard.RootPath, df.addr, self, redisArg, self, redisArg, self, redisArg)
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wf.shutdownTimeout+30*time.Second)
			defer cancel()
			return w.Shutdown(sctx)
		},
	}
	wf.register(cmd.Flags())
	df.register(cmd.Flags(), "dashboard-addr", "127.0.0.1:8080", "address of the HTTP API (/v1/), the dashboard (/monitoring/) and metrics (/metrics)")
	af.register(cmd.Flags())
	cmd.Flags().StringVar(&embeddedAddr, "embedded-addr", "127.0.0.1:6379", "address of execq up's own Redis")
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "where execq up's redis-server keeps its data")
	return cmd
}

// redisAnswers reports whether a Redis server answers at url.
func redisAnswers(ctx context.Context, url string) bool {
	c, err := redisaddr.Open(url)
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

// tickTTLs makes the embedded Redis expire keys as time passes; it only
// moves its clock when told.
func tickTTLs(ctx context.Context, mr *miniredis.Miniredis) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case now := <-t.C:
			mr.FastForward(now.Sub(last))
			last = now
		case <-ctx.Done():
			return
		}
	}
}
