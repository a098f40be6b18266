package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func newMCPCommand(rf *redisFlag) *cobra.Command {
	var (
		queue, image string
		verbose      bool
	)
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the Model Context Protocol on stdin and stdout: tools that run commands in execq's sandboxes",
		Long: `Serves one MCP session on standard input and output (newline-delimited
JSON-RPC), for an MCP client that starts it, with the tools execute, submit,
get_result and cancel. Executions go to the workers on --redis (or
EXECQ_REDIS_URL). Nothing but the protocol is written to stdout; warnings
(and with -v, every submission) go to stderr. It ends when stdin closes or on
SIGINT or SIGTERM; an execute still running then is canceled.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			rc, err := dialRedis(rf.url)
			if err != nil {
				return err
			}
			defer rc.Close()
			// A Redis that does not answer yet is no reason to fail the
			// client's start: each tool call says what went wrong.
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := rc.Ping(pctx).Err(); err != nil {
				log.Warn("redis does not answer; tool calls will fail until it does", "redis", redacted(rf.url), "err", err)
			}
			cancel()
			srv, err := mcpserver.New(mcpserver.Config{
				Client: producer.New(rc, producer.Options{Queue: queue}),
				Logger: log,
				Queue:  queue,
				Image:  image,
			})
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			if err := srv.ServeStdio(ctx, cmd.InOrStdin(), cmd.OutOrStdout()); err != nil && ctx.Err() == nil {
				return exitWith(exitExecqFailed, "mcp: %v", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&queue, "queue", tasks.DefaultQueue, "queue the executions are submitted to")
	cmd.Flags().StringVar(&image, "image", "", "sandbox image of executions that name none (default the worker's)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every submission and cancel to stderr")
	return cmd
}
