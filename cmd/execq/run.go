package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func newRunCommand(rf *redisFlag) *cobra.Command {
	var (
		req       requestFlags
		asJSON    bool
		outputDir string
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG...] | run --lang LANG (--code CODE | --file FILE) [flags]",
		Short: "Run a command and print its output as it happens",
		Long: `Submits an execution, prints the command's stdout and stderr to this
process's stdout and stderr byte for byte as they are produced, and exits with
the command's exit code: 124 when it timed out, 130 when it was canceled, 137
when the memory limit killed it, and 125 when execq could not run it.
Ctrl-C cancels the execution.

With --lang, the worker runs a program of that language of its catalogue
(execq languages lists the built-in one): --code is its source, or --file puts
its source file (main.c for c) into /workspace; a language with a compile step
compiles it first, in the same sandbox, and a compile error ends the execution
(failed, with the compiler's output). A command after -- runs instead of the
language's steps, in its image.

With --session ID, the execution runs in that session (execq session create):
in its sandbox, after its earlier executions, with the files they left in
/workspace and the processes they left running. The session decides the queue,
the image and the limits, so --queue, --image, --memory, --cpus and --pids are
refused with it. run exits 128 when the session admits nothing (it is closed,
lost, or unknown) or was lost while the execution waited or ran; a session
closed meanwhile cancels the execution (130).`,
		Args: commandArgs(&req),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := submit(cmd, rf.url, &req, args)
			if err != nil {
				return err
			}
			defer s.close()
			opts := newFollowOptions(cmd, !asJSON)
			opts.printOutput, opts.printJSON = !asJSON, asJSON
			opts.collectTo, opts.collect, opts.force = outputDir, s.req.Collect, force
			err = follow(cmd.Context(), s.client, s.id, opts)
			return sessionGone(cmd.Context(), s.client, s.req.Session, err)
		},
	}
	req.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result JSON instead of the output")
	cmd.Flags().StringVar(&outputDir, "output-dir", "", "where collected files are written (default a new directory ./execq-ID)")
	cmd.Flags().BoolVar(&force, "force", false, "let collected files replace existing regular files in --output-dir")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// submission is an execution submitted, and the client that submitted it.
type submission struct {
	client *producer.Client
	close  func()
	req    tasks.ExecRequest
	id     string
}

// submit builds the request the flags and args describe and submits it;
// a failure ends execq with 125. The caller closes the submission.
func submit(cmd *cobra.Command, url string, flags *requestFlags, args []string) (*submission, error) {
	if err := flags.checkSession(cmd.Flags()); err != nil {
		return nil, exitWith(exitExecqFailed, "%v", err)
	}
	req, err := flags.request(argsAfterDash(cmd, args), cmd.InOrStdin())
	if err != nil {
		return nil, exitWith(exitExecqFailed, "%v", err)
	}
	client, closeClient, err := dialClient(url)
	if err != nil {
		return nil, err
	}
	id, err := client.Submit(cmd.Context(), req)
	if err != nil {
		closeClient()
		switch {
		case errors.Is(err, producer.ErrSessionClosed):
			return nil, exitWith(exitSessionGone, "session %s is closed: it admits no execution", req.Session)
		case errors.Is(err, producer.ErrSessionNotFound):
			return nil, exitWith(exitSessionGone, "session %s not found: it never existed, or ended past the retention period", req.Session)
		case errors.Is(err, producer.ErrSessionLost):
			return nil, exitWith(exitSessionGone, "%v", err)
		}
		return nil, exitWith(exitExecqFailed, "%v", err)
	}
	return &submission{client: client, close: closeClient, req: req, id: id}, nil
}

// sessionGone turns the error of an execution of session sid that execq
// could not run into exitSessionGone when the session ended meanwhile
// (its worker died, its sandbox stopped) or no longer exists: the
// executions it had admitted end with an error result then. Any other err
// is returned as it is.
func sessionGone(ctx context.Context, client *producer.Client, sid string, err error) error {
	var ee *exitError
	if sid == "" || !errors.As(err, &ee) || ee.code != exitExecqFailed {
		return err
	}
	var msg string
	switch info, ierr := client.Session(sid).Info(ctx); {
	case errors.Is(ierr, producer.ErrSessionNotFound):
		msg = fmt.Sprintf("session %s no longer exists", sid)
	case ierr != nil || !info.Status.Ended():
		return err
	default:
		msg = fmt.Sprintf("session %s is %s", sid, info.Status)
		if info.Error != "" && !strings.Contains(ee.msg, info.Error) {
			msg += ": " + info.Error
		}
	}
	if ee.msg != "" {
		msg = ee.msg + "; " + msg
	}
	return exitWith(exitSessionGone, "%s", msg)
}

type followOptions struct {
	stdout, stderr io.Writer
	printOutput    bool
	printJSON      bool
	// printEvents prints each event as a JSON line with its stream ID.
	printEvents bool
	collect     []string // the request's collect globs
	collectTo   string
	force       bool
	from        string
	status      *statusLine
}

// newFollowOptions writes to cmd's stdout and stderr, with a status line
// when status is on and both are terminals.
func newFollowOptions(cmd *cobra.Command, status bool) followOptions {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	return followOptions{stdout: stdout, stderr: stderr, status: newStatusLine(status, stdout, stderr)}
}

// follow prints an execution's output until it exits and returns the exit
// code error of the CLI. The first SIGINT or SIGTERM cancels the execution
// and goes on following it; a second one leaves at once.
func follow(ctx context.Context, client *producer.Client, id string, opts followOptions) error {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	ctx, leave := context.WithCancel(ctx)
	defer leave()
	go func() {
		select {
		case <-signals:
		case <-ctx.Done():
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := client.Cancel(cctx, id)
		cancel()
		if err != nil && !errors.Is(err, producer.ErrFinished) {
			fmt.Fprintln(opts.stderr, "execq: cancel:", err)
		}
		select {
		case <-signals:
			leave()
		case <-ctx.Done():
		}
	}()

	var exit tasks.ExitData
	status := opts.status
	status.show("queued as %s", id)
	defer status.clear()
	for ev, err := range client.Follow(ctx, id, opts.from) {
		if err != nil {
			status.clear()
			if errors.Is(err, context.Canceled) {
				return exitWith(exitCanceled, "left %s running after a second interrupt", id)
			}
			if errors.Is(err, producer.ErrNotFound) {
				return exitWith(exitNotFound, "%v", err)
			}
			return exitWith(exitExecqFailed, "%v", err)
		}
		if opts.printEvents {
			if err := printEvent(opts.stdout, ev); err != nil {
				return exitWith(exitExecqFailed, "write stdout: %v", err)
			}
		}
		switch ev.Type {
		case tasks.EventStarted:
			if d, err := ev.Started(); err == nil {
				status.started(d)
			}
		case tasks.EventStdout:
			status.clear()
			if opts.printOutput {
				if _, err := opts.stdout.Write(ev.Data); err != nil {
					return exitWith(exitExecqFailed, "write stdout: %v", err)
				}
			}
		case tasks.EventStderr:
			status.clear()
			if opts.printOutput {
				_, _ = opts.stderr.Write(ev.Data)
			}
		case tasks.EventExit:
			status.clear()
			if exit, err = ev.Exit(); err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
		}
	}
	truncated := opts.printOutput && (exit.StdoutTruncated || exit.StderrTruncated)
	if opts.printJSON || len(opts.collect) > 0 || truncated {
		res, err := client.Result(ctx, id)
		if err != nil {
			return exitWith(exitExecqFailed, "%v", err)
		}
		if truncated {
			sayTruncated(opts.stderr, res)
		}
		if opts.printJSON {
			if err := printJSON(opts.stdout, res); err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
		}
		if len(opts.collect) > 0 {
			if err := writeCollected(id, opts, res.Files); err != nil {
				return err
			}
		}
	}
	if opts.printOutput && exit.Step == tasks.StepCompile {
		fmt.Fprintf(opts.stderr, "execq: the compile step ended %s (exit code %d); the program did not run\n", exit.Status, exit.ExitCode)
	}
	code := exitCodeOf(exit.Status, exit.ExitCode)
	if exit.Status == tasks.StatusSucceeded || exit.Status == tasks.StatusFailed || opts.printJSON {
		return exitCodeOnly(code)
	}
	msg := string(exit.Status)
	if exit.Error != "" {
		msg += ": " + exit.Error
	}
	return exitWith(code, "%s", msg)
}

// printEvent writes ev as one JSON line: its stream ID (what --from
// takes), its type, and its data as text, or as base64 in dataBase64 when
// it is not valid UTF-8.
func printEvent(w io.Writer, ev tasks.Event) error {
	line := struct {
		ID         string          `json:"id"`
		Type       tasks.EventType `json:"type"`
		Data       *string         `json:"data,omitempty"`
		DataBase64 []byte          `json:"dataBase64,omitempty"`
	}{ID: ev.ID, Type: ev.Type}
	if utf8.Valid(ev.Data) {
		text := string(ev.Data)
		line.Data = &text
	} else {
		line.DataBase64 = ev.Data
	}
	return printJSONLine(w, line)
}

// sayTruncated tells on stderr which streams the output cap cut, and by
// how much: what was printed is not all the command wrote.
func sayTruncated(w io.Writer, res *tasks.Result) {
	for _, st := range []struct {
		name      string
		cut       bool
		kept, all int64
	}{
		{"stdout", res.StdoutTruncated, int64(len(res.Stdout)), res.StdoutBytes},
		{"stderr", res.StderrTruncated, int64(len(res.Stderr)), res.StderrBytes},
	} {
		if st.cut {
			fmt.Fprintf(w, "execq: %s truncated: printed %s of %s; --max-output raises the cap\n",
				st.name, units.BytesSize(float64(st.kept)), units.BytesSize(float64(st.all)))
		}
	}
}

func exitCodeOnly(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func printJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeCollected writes the collected files under opts.collectTo, or a
// new directory ./execq-ID, with producer.WriteFiles' guarantees. Files the
// worker could not return are reported; files that could not be written
// here end execq with 125, after every other file is written.
func writeCollected(id string, opts followOptions, files []tasks.CollectedFile) error {
	var returned []tasks.CollectedFile
	for _, f := range files {
		if f.Error != "" {
			fmt.Fprintf(opts.stderr, "execq: %q: %s\n", f.Path, printable(f.Error))
			continue
		}
		returned = append(returned, f)
	}
	if len(returned) == 0 {
		return nil
	}
	dir := opts.collectTo
	if dir == "" {
		dir = "execq-" + id
		if err := os.Mkdir(dir, 0o755); err != nil {
			return exitWith(exitExecqFailed, "the collected files' directory: %v", err)
		}
	}
	skipped, err := producer.WriteFiles(dir, returned, producer.WriteOptions{Globs: opts.collect, Force: opts.force})
	if err != nil {
		return exitWith(exitExecqFailed, "%v", err)
	}
	for _, s := range skipped {
		fmt.Fprintf(opts.stderr, "execq: %q not written: %s\n", filepath.Join(dir, s.Path), printable(s.Reason))
	}
	if len(skipped) > 0 {
		return exitWith(exitExecqFailed, "%d collected files not written into %s", len(skipped), dir)
	}
	return nil
}

// printable escapes what a terminal would act on (control characters,
// escape sequences, invalid UTF-8) in text that came from a sandbox, such
// as collected files' names, so that execq's own messages cannot be
// forged or rewrite the terminal.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
