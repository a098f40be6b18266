package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func newSubmitCommand() *cobra.Command {
	var (
		redisURL string
		req      requestFlags
	)
	cmd := &cobra.Command{
		Use:   "submit [flags] -- CMD [ARG...]",
		Short: "Submit a command and print its execution ID",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, id, err := submit(cmd, redisURL, &req, args)
			if err != nil {
				return err
			}
			defer client.Close()
			fmt.Println(id)
			return nil
		},
	}
	redisFlag(cmd.Flags(), &redisURL)
	req.register(cmd.Flags())
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newTailCommand() *cobra.Command {
	var (
		redisURL string
		from     string
		events   bool
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
			client, err := dial(redisURL)
			if err != nil {
				return err
			}
			defer client.Close()
			opts := followOptions{printOutput: !events, printEvents: events, from: from, status: newStatusLine(!events)}
			return follow(cmd.Context(), client, args[0], opts)
		},
	}
	redisFlag(cmd.Flags(), &redisURL)
	cmd.Flags().StringVar(&from, "from", "", "resume after this stream entry ID")
	cmd.Flags().BoolVar(&events, "events", false, "print each event as a JSON line with its stream ID, instead of the output")
	return cmd
}

func newResultCommand() *cobra.Command {
	var (
		redisURL string
		wait     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "result ID",
		Short: "Print an execution's result as JSON",
		Long: `Prints the result JSON. Without --wait it exits 1 when the execution has no
result yet; with --wait it waits up to that long for one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := dial(redisURL)
			if err != nil {
				return err
			}
			defer client.Close()
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
			return printJSON(os.Stdout, res)
		},
	}
	redisFlag(cmd.Flags(), &redisURL)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the result")
	return cmd
}

func newCancelCommand() *cobra.Command {
	var redisURL string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel an execution, queued or running",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := dial(redisURL)
			if err != nil {
				return err
			}
			defer client.Close()
			err = client.Cancel(cmd.Context(), args[0])
			switch {
			case errors.Is(err, producer.ErrFinished):
				return exitWith(exitNotYet, "%v", err)
			case errors.Is(err, producer.ErrNotFound):
				return exitWith(exitNotFound, "%v", err)
			case err != nil:
				return exitWith(exitExecqFailed, "%v", err)
			}
			fmt.Fprintf(os.Stderr, "execq: %s canceled\n", args[0])
			return nil
		},
	}
	redisFlag(cmd.Flags(), &redisURL)
	return cmd
}
