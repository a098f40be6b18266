// Command execq runs untrusted commands in warm, locked-down containers
// through a Redis job queue: `execq worker` serves executions, `execq run`
// submits one and prints its output as it happens.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// exitError ends the process with a code, after the message (if any) is
// printed.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitWith(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// execute runs the command line args and returns the exit code of the
// process, having said on stderr why when it is execq's own.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "execq:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "execq:", err)
	return exitExecqFailed
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "execq",
		Short: "Run untrusted commands in warm, locked-down containers through a Redis queue",
		Long: `execq runs commands for AI agents in warm, locked-down Docker containers.
Agents submit executions to Redis; workers run them, stream their output into
Redis as it happens and store each result under its execution ID.

Every command that talks to Redis reads --redis, or EXECQ_REDIS_URL.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var rf redisFlag
	rf.register(root.PersistentFlags())
	root.AddCommand(
		newWorkerCommand(&rf),
		newRunCommand(&rf),
		newSubmitCommand(&rf),
		newTailCommand(&rf),
		newResultCommand(&rf),
		newCancelCommand(&rf),
		newSessionCommand(&rf),
		newDashboardCommand(&rf),
		newUpCommand(&rf),
		newServeCommand(&rf),
		newMCPCommand(&rf),
		newBenchCommand(),
		newLanguagesCommand(),
	)
	return root
}
