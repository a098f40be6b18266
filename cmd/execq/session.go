package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func newSessionCommand(rf *redisFlag) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session",
		Short: "Create, list, show and close sessions: a sandbox kept for a series of executions",
		Long: `A session is one sandbox held by a worker for a series of executions, which
run one at a time, in the order they were submitted, and keep the files of
/workspace and the processes that the earlier ones left:

  id=$(execq session create --lang python --idle 5m)
  execq run --session "$id" -- sh -c 'echo hi > f'
  execq run --session "$id" -- cat f
  execq session close "$id"

The session decides the image and the limits of its executions. It ends when
it is closed, when nothing ran in it for its idle timeout (--idle, default
10m), at the end of its lifetime (--lifetime, default 2h, at most 24h), or when
its worker goes away (lost). A worker holds at most --max-sessions sessions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newSessionCreateCommand(rf),
		newSessionListCommand(rf),
		newSessionShowCommand(rf),
		newSessionCloseCommand(rf),
	)
	return cmd
}

// sessionFlags are the flags of execq session create.
type sessionFlags struct {
	id       string
	queue    string
	image    string
	lang     string
	idle     time.Duration
	lifetime time.Duration
	memory   string
	cpus     float64
	pids     int64
	env      []string
	files    []string
	wait     time.Duration
}

func (f *sessionFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.id, "id", "", "session ID (default a new UUID)")
	fs.StringVar(&f.queue, "queue", tasks.DefaultQueue, "queue of the workers that may open it; its executions then go to the queue of the worker that opened it")
	fs.StringVar(&f.image, "image", "", "the session's sandbox image (default the worker's, or the language's)")
	fs.StringVar(&f.lang, "lang", "", "run the session in the image of this language of the worker's catalogue (execq languages); its executions may then give --lang and --code")
	fs.DurationVar(&f.idle, "idle", 0, "close the session when nothing ran in it for this long (default 10m)")
	fs.DurationVar(&f.lifetime, "lifetime", 0, "close the session this long after its creation (default 2h, at most 24h)")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit of the session's sandbox, e.g. 64m, 1g (default the worker's, 256m)")
	fs.Float64Var(&f.cpus, "cpus", 0, "CPUs the session's sandbox may use, e.g. 0.5 (default the worker's, 1)")
	fs.Int64Var(&f.pids, "pids", 0, "process limit of the session's sandbox (default the worker's, 256)")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable for every execution of the session: K=V, or K to pass this shell's value")
	fs.StringArrayVar(&f.files, "file", nil, "put a local file or directory into /workspace when the session opens: SRC[:DST]")
	fs.DurationVar(&f.wait, "wait", producer.DefaultCreateTimeout, "wait this long for a worker to open the session; one that none opened by then is closed")
}

func (f *sessionFlags) request() (tasks.SessionRequest, error) {
	req := tasks.SessionRequest{
		ID:          f.id,
		Queue:       f.queue,
		Image:       f.image,
		Language:    f.lang,
		CPUs:        f.cpus,
		Pids:        f.pids,
		IdleTimeout: f.idle,
		Lifetime:    f.lifetime,
	}
	var err error
	if req.MemoryBytes, err = parseSize("--memory", f.memory); err != nil {
		return req, err
	}
	if req.Env, err = parseEnv(f.env); err != nil {
		return req, err
	}
	if req.Files, err = readFileFlags(f.files); err != nil {
		return req, err
	}
	if f.wait <= 0 {
		return req, fmt.Errorf("--wait %s is not a positive duration", f.wait)
	}
	return req, nil
}

func newSessionCreateCommand(rf *redisFlag) *cobra.Command {
	var (
		f      sessionFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "create [flags]",
		Short: "Open a session and print its ID",
		Long: `Asks a worker to open a session, waits until one holds its sandbox (at most
--wait), and prints the session's ID, or with --json its state. execq run and
execq submit take the ID with --session.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request()
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.wait)
			defer cancel()
			s, err := client.CreateSession(ctx, req)
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			if !asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), s.ID())
				return nil
			}
			info, err := s.Info(cmd.Context())
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			return printJSON(cmd.OutOrStdout(), info)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the session's state as JSON instead of its ID")
	return cmd
}

func newSessionListCommand(rf *redisFlag) *cobra.Command {
	var (
		all    bool
		asJSON bool
		owner  string
		limit  int64
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the sessions, newest first",
		Long: `Lists the sessions not yet ended, newest first, of every owner (--owner keeps
one's; "" is the sessions made without one, as execq session create makes
them); --all lists the ended ones too, within the retention period. EXECS is
the executions that ended over those admitted; IDLE how long nothing has run
in an open session.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit <= 0 {
				return exitWith(exitExecqFailed, "--limit %d is not a positive number", limit)
			}
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			if !cmd.Flags().Changed("owner") {
				owner = "*"
			}
			list, err := client.Sessions(cmd.Context(), limit, !all, owner)
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			if asJSON {
				if list == nil {
					list = []tasks.SessionInfo{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			return printSessions(cmd.OutOrStdout(), list, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "list the ended sessions too")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the sessions' states as a JSON array")
	cmd.Flags().StringVar(&owner, "owner", "", "list only this owner's sessions (default every owner's)")
	cmd.Flags().Int64VarP(&limit, "limit", "n", 100, "list at most this many sessions")
	return cmd
}

// printSessions writes the sessions as a table, their ages and idle times
// counted at now.
func printSessions(w io.Writer, list []tasks.SessionInfo, now time.Time) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTATUS\tOWNER\tWORKER\tIMAGE\tAGE\tIDLE\tEXECS\tCAUSE")
	for _, s := range list {
		idle := "-"
		if s.Status == tasks.SessionOpen {
			idle = shortDuration(s.IdleFor(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", s.ID, s.Status, orDash(printable(s.Owner)),
			orDash(s.Worker), orDash(sessionImage(s)), shortDuration(now.Sub(s.CreatedAt)), idle, s.Done, s.Executions, orDash(s.Cause))
	}
	return tw.Flush()
}

// sessionImage is the session's image, and its language when it has one.
func sessionImage(s tasks.SessionInfo) string {
	switch {
	case s.Language != "" && s.Image != "":
		return s.Image + " (" + s.Language + ")"
	case s.Language != "":
		return s.Language
	}
	return s.Image
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortDuration writes d to the second, in at most two units: "45s",
// "3m05s", "2h10m", "3d4h".
func shortDuration(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// sessionError is the exit code error of a session command that failed
// with err: 2 for no such session.
func sessionError(err error) error {
	if errors.Is(err, producer.ErrSessionNotFound) {
		return exitWith(exitNotFound, "%v", err)
	}
	return exitWith(exitExecqFailed, "%v", err)
}

func newSessionShowCommand(rf *redisFlag) *cobra.Command {
	var (
		asJSON bool
		owner  string
	)
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print a session's state and its executions",
		Long: `Prints a session's state and the IDs of the executions it admitted, in their
order; --json prints its state as JSON. A session that another owner holds
(one made through the HTTP API or the MCP server) needs --owner.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			s := client.SessionOf(args[0], owner)
			info, err := s.Info(cmd.Context())
			if err != nil {
				return sessionError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			ids, err := s.Executions(cmd.Context())
			if err != nil {
				return sessionError(err)
			}
			return printSession(cmd.OutOrStdout(), info, ids, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the session's state as JSON")
	cmd.Flags().StringVar(&owner, "owner", "", "the owner that holds the session")
	return cmd
}

// printSession writes one session's state, one field a line, then its
// executions.
func printSession(w io.Writer, s tasks.SessionInfo, executions []string, now time.Time) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format(time.DateTime) + " (" + shortDuration(now.Sub(t)) + " ago)"
	}
	idle := ""
	if s.Status == tasks.SessionOpen {
		idle = shortDuration(s.IdleFor(now))
	}
	for _, kv := range [][2]string{
		{"session", s.ID},
		{"status", string(s.Status)},
		{"cause", s.Cause},
		{"error", printable(s.Error)},
		{"owner", printable(s.Owner)},
		{"image", s.Image},
		{"language", s.Language},
		{"worker", s.Worker},
		{"queue", s.Queue},
		{"container", s.Container},
		{"executions", fmt.Sprintf("%d admitted, %d ended", s.Executions, s.Done)},
		{"running", s.Running},
		{"idle", idle},
		{"idle timeout", s.IdleTimeout.String()},
		{"lifetime", s.Lifetime.String()},
		{"created", at(s.CreatedAt)},
		{"opened", at(s.OpenedAt)},
		{"last active", at(s.LastActiveAt)},
		{"ended", at(s.EndedAt)},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(executions) > 0 {
		fmt.Fprintln(w, "\nexecutions admitted, in order:")
		for _, id := range executions {
			fmt.Fprintln(w, "  "+id)
		}
	}
	return nil
}

func newSessionCloseCommand(rf *redisFlag) *cobra.Command {
	var owner string
	cmd := &cobra.Command{
		Use:   "close ID",
		Short: "Close a session: cancel what runs and waits in it, and reset its sandbox",
		Long: `Closes a session: it admits nothing from then on, the execution running in it
and those waiting are canceled, and its worker kills every process of its
sandbox and resets it, shortly after (execq session show then says closed).
Closing a session that has ended does nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeClient, err := dialClient(rf.url)
			if err != nil {
				return err
			}
			defer closeClient()
			if err := client.SessionOf(args[0], owner).Close(cmd.Context()); err != nil {
				return sessionError(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "execq: session %s closed\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "the owner that holds the session")
	return cmd
}
