package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func newSubmitCommand(rf *redisFlag) *cobra.Command {
	var req requestFlags
	cmd := &cobra.Command{
		Use:   "submit [flags] -- CMD [ARG...] | submit --lang LANG (--code CODE | --file FILE) [flags]",
		Short: "Submit a command and print its execution ID",
		Args:  commandArgs(&req),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := submit(cmd, rf.url, &req, args)
			if err != nil {
				return err
			}
			defer s.close()
			fmt.Fprintln(cmd.OutOrStdout(), s.id)
			return nil
		},
	}
	req.register(cmd.Flags())
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newTailCommand(rf *redisFlag) *cobra.Command {
	var (
		from   string
		events bool
	)
	cmd := &cobra.Command{
		Use:   "tail ID",
		Short: "Print an execution's output as it happens and exit like run",
		Long: `Prints an execution's output as it happens and exits like run. With
--events it prints every event instead, one JSON line each, with the stream
ID that --from takes to resume after it:

  {"id":"1764633600000-0","type":"stdout","data":"hi
"}

data is the event's text, or dataBase64 when it is not valid UTF-8.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			opts := newFollowOptions(cmd, !events)
			opts.printOutput, opts.printEvents, opts.from = !events, events, from
			return follow(cmd.Context(), client, args[0], opts)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "resume after this stream entry ID")
	cmd.Flags().BoolVar(&events, "events", false, "print each event as a JSON line with its stream ID, instead of the output")
	return cmd
}

func newResultCommand(rf *redisFlag) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "result ID",
		Short: "Print an execution's result as JSON",
		Long: `Prints the result JSON. Without --wait it exits 1 when the execution has no
result yet; with --wait it waits up to that long for one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			ctx := cmd.Context()
			var res *tasks.Result
			if wait > 0 {
				wctx, cancel := context.WithTimeout(ctx, wait)
				defer cancel()
				res, err = client.Wait(wctx, args[0])
				if errors.Is(err, context.DeadlineExceeded) {
					return exitWith(exitNotYet, "%s has no result after %s", args[0], wait)
				}
			} else {
				res, err = client.Result(ctx, args[0])
			}
			switch {
			case errors.Is(err, producer.ErrNoResult):
				return exitWith(exitNotYet, "%v", err)
			case errors.Is(err, producer.ErrNotFound):
				return exitWith(exitNotFound, "%v", err)
			case err != nil:
				return exitWith(exitExecqFailed, "%v", err)
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the result")
	return cmd
}

func newCancelCommand(rf *redisFlag) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel an execution, queued or running",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			err = client.Cancel(cmd.Context(), args[0])
			switch {
			case errors.Is(err, producer.ErrFinished):
				return exitWith(exitNotYet, "%v", err)
			case errors.Is(err, producer.ErrNotFound):
				return exitWith(exitNotFound, "%v", err)
			case err != nil:
				return exitWith(exitExecqFailed, "%v", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "execq: %s canceled\n", args[0])
			return nil
		},
	}
	return cmd
}
