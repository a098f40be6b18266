// Command execq runs untrusted commands in warm, locked-down containers
// through a Redis job queue: `execq worker` serves executions, `execq run`
// submits one and prints its output as it happens.
package main

import (
	"errors"
	"fmt"
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
	root := newRootCommand()
	err := root.Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "execq:", ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "execq:", err)
	os.Exit(exitExecqFailed)
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
	root.AddCommand(
		newWorkerCommand(),
		newRunCommand(),
		newSubmitCommand(),
		newTailCommand(),
		newResultCommand(),
		newCancelCommand(),
		newDashboardCommand(),
		newUpCommand(),
		newBenchCommand(),
	)
	return root
}
