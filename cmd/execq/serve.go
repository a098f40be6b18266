package main

import (
	"context"
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
	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/metrics"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/redisaddr"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// apiFlags configure the HTTP API; `execq up` shares them.
type apiFlags struct {
	tokenFile  string
	rate       float64
	burst      int
	maxStreams int
	maxBody    string
	hubReaders int
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.tokenFile, "api-token-file", "", "API: bearer tokens, one per line (# comments and blank lines ignored); also EXECQ_API_TOKENS, comma-separated. Without any, the API asks for none and listens on loopback only")
	fs.Float64Var(&f.rate, "api-rate", 100, "API: requests per second per token")
	fs.IntVar(&f.burst, "api-burst", 200, "API: bursts of requests per token above --api-rate")
	fs.IntVar(&f.maxStreams, "api-max-streams", 1000, "API: open event streams per token")
	fs.StringVar(&f.maxBody, "api-max-body", "64m", "API: largest submission body")
	fs.IntVar(&f.hubReaders, "api-stream-readers", 4, "API: Redis connections that read the executions' streams for all event streams and long polls")
}

// apiServer is the API and the hub it reads streams with.
type apiServer struct {
	api *httpapi.API
	mcp *httpapi.MCP
	hub *httpapi.Hub
}

// stop ends the API's streams, then the MCP server's calls under way
// (their executions canceled), then the hub: the order a server's shutdown
// needs, once the HTTP server has stopped (the streams end, then nothing
// reads for them).
func (s *apiServer) stop() {
	s.api.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = s.mcp.Shutdown(ctx)
	s.hub.Stop()
}

// tokens reads --api-token-file and EXECQ_API_TOKENS.
func (f *apiFlags) tokens() (*httpapi.Tokens, error) {
	return httpapi.LoadTokens(f.tokenFile, os.Getenv("EXECQ_API_TOKENS"))
}

// build makes the API on client, with its hub started on ctx; the hub's
// readers connect to redisURL, each on a connection of its own.
func (f *apiFlags) build(ctx context.Context, client redis.UniversalClient, redisURL string, tokens *httpapi.Tokens, reg *metrics.Registry, retention time.Duration, limits tasks.Limits, hosts []string, log *slog.Logger) (*apiServer, error) {
	maxBody, err := parseSize("--api-max-body", f.maxBody)
	if err != nil {
		return nil, err
	}
	m := metrics.NewAPI(reg)
	store := rdb.New(client, tasks.Keys{}, retention)
	addr, err := redisaddr.Parse(redisURL)
	if err != nil {
		return nil, exitWith(exitExecqFailed, "--redis %s: %v", redacted(redisURL), err)
	}
	hubCfg := httpapi.HubConfig{
		Store:   store,
		Readers: f.hubReaders,
		Connect: func(ctx context.Context) (httpapi.Conn, error) {
			c, err := addr.Dedicated("execq-api-stream-reader")
			if err != nil {
				return nil, err
			}
			if err := c.Ping(ctx).Err(); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		Metrics: m,
		Logger:  log,
	}
	if cluster, ok := client.(*redis.ClusterClient); ok && addr.Kind == redisaddr.Cluster {
		// One XREAD names keys of one slot: a reader per slot in use, on
		// a connection to the slot's master.
		hubCfg.Connect = nil
		hubCfg.Slot = func(id string) int { return redisaddr.Slot(store.Keys().Stream(id)) }
		hubCfg.ConnectKey = func(ctx context.Context, key string) (httpapi.Conn, error) {
			node, err := cluster.MasterForKey(ctx, key)
			if err != nil {
				return nil, err
			}
			// A client of one connection of its own, outside the node's
			// pool, which the API's other commands use.
			opts := *node.Options()
			opts.PoolSize, opts.MinIdleConns, opts.MaxIdleConns = 1, 0, 1
			opts.ClientName = "execq-api-stream-reader"
			c := redis.NewClient(&opts)
			if err := c.Ping(ctx).Err(); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		}
	}
	hub, err := httpapi.NewHub(hubCfg)
	if err != nil {
		return nil, err
	}
	executions := producer.New(client, producer.Options{Retention: retention})
	mcp, err := httpapi.NewMCP(httpapi.MCPConfig{
		Tokens:     tokens,
		Store:      store,
		Executions: executions,
		New: func(exec mcpserver.Executions) (*mcpserver.Server, error) {
			return mcpserver.New(mcpserver.Config{Client: exec, Logger: log.With("component", "mcp")})
		},
		AllowedHosts: hosts,
	})
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Config{
		Client:        executions,
		Store:         store,
		Hub:           hub,
		Tokens:        tokens,
		Limits:        limits,
		MaxBodyBytes:  maxBody,
		RatePerSecond: f.rate,
		RateBurst:     f.burst,
		MaxStreams:    f.maxStreams,
		AllowedHosts:  hosts,
		Metrics:       m,
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	hub.Start(ctx)
	return &apiServer{api: api, mcp: mcp, hub: hub}, nil
}

// withAPI serves the API under /v1/, the MCP server at /mcp and rest
// elsewhere.
func withAPI(srv *apiServer, rest http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv.api)
	mux.Handle("/mcp", srv.mcp)
	mux.Handle("/", rest)
	return mux
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errOpenAPI is the refusal to serve the API without tokens on an address
// other hosts reach.
func errOpenAPI(flag, addr string) error {
	return exitWith(exitExecqFailed, "%s %s is not a loopback address, and no API tokens are set: anyone who reaches it could run commands. "+
		"Give tokens with --api-token-file or EXECQ_API_TOKENS, or listen on 127.0.0.1", flag, addr)
}

func newServeCommand(rf *redisFlag) *cobra.Command {
	var (
		df        dashboardFlags
		af        apiFlags
		retention time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API, the dashboard and metrics on one address",
		Long: `Serves, on one address: the HTTP API under /v1/ (its OpenAPI document at
/v1/openapi.json), the MCP server at /mcp (streamable HTTP, behind the same
tokens), the asynqmon dashboard under /monitoring/ and the execution view under
/executions/, Prometheus metrics under /metrics and /healthz. Bearer tokens (--api-token-file, EXECQ_API_TOKENS)
protect the API and scope executions to the token that submitted them; without
tokens, serve listens on a loopback address only. --basic-auth protects the
dashboard.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			tokens, err := af.tokens()
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			if tokens.Len() == 0 && !loopback(df.addr) {
				return errOpenAPI("--addr", df.addr)
			}
			client, err := dialRedis(rf.url)
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			reg := metrics.NewRegistry()
			if err := reg.Register(metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(client))); err != nil {
				return err
			}
			dash, err := df.handler(client, reg, retention, nil, log)
			if err != nil {
				return err
			}
			srv, err := af.build(ctx, client, rf.url, tokens, reg, retention, tasks.DefaultLimits(), append([]string{df.addr}, df.allowedHosts...), log)
			if err != nil {
				return err
			}
			defer srv.stop()
			stopHTTP, err := serveHTTP(ctx, df.addr, withAPI(srv, dash), log, srv.api.Close)
			if err != nil {
				return err
			}
			auth := "none (loopback only)"
			if tokens.Len() > 0 {
				auth = fmt.Sprintf("%d bearer tokens", tokens.Len())
			}
			log.Info("serving", "api", "http://"+df.addr+"/v1/", "mcp", "http://"+df.addr+"/mcp", "auth", auth,
				"dashboard", "http://"+df.addr+dashboard.RootPath+"/", "metrics", "http://"+df.addr+"/metrics")
			<-ctx.Done()
			stopHTTP()
			return nil
		},
	}
	df.register(cmd.Flags(), "addr", "127.0.0.1:8088", "address of the HTTP API (/v1/), the dashboard (/monitoring/), metrics (/metrics) and /healthz")
	af.register(cmd.Flags())
	cmd.Flags().DurationVar(&retention, "retention", tasks.DefaultRetention, "how long results and streams are kept: the workers' --retention")
	return cmd
}
