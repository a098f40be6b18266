// Command execq-agent is the program execq puts into every sandbox, from a
// read-only volume, without changing the image: a static binary with no
// dependency but the standard library and golang.org/x/sys.
//
//	execq-agent serve --uid U --gid G [--wipe DIR]... [--listen NAME]
//	                                                     PID 1 of an agent-runtime sandbox: speaks the
//	                                                     protocol of internal/agent/proto on stdin/stdout,
//	                                                     or with the worker that connects to the abstract
//	                                                     unix socket NAME
//	execq-agent idle                                    the docker-exec runtime's keepalive
//	execq-agent reset --uid U --gid G [--wipe DIR]...   the docker-exec runtime's reset, run as the user;
//	                                                     prints a JSON report
//	execq-agent kill --uid U [--keep]                   kills every process of the user; with --keep, those
//	                                                     not in the snapshot read from stdin and not
//	                                                     descended from one of it
//	execq-agent snapshot --uid U                        prints the user's processes as a JSON snapshot
//	execq-agent put [--max-bytes N]                     extracts a tar archive from stdin into /workspace
//	execq-agent collect --glob G... [--max-bytes N] [--max-entries N] [--budget D]
//	                                                     writes a tar archive of the matching files to stdout
//	                                                     and a JSON report to stderr
//	execq-agent launch                                  starts a command for the agent (internal)
//	execq-agent version
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent"
	"github.com/execq/execq/internal/agent/proto"
)

// name is the agent's build, as it says in its Hello.
var name = fmt.Sprintf("execq-agent protocol %d (%s)", proto.Version, runtime.Version())

func main() {
	if len(os.Args) < 2 {
		fatal(errors.New("usage: execq-agent serve|idle|reset|kill|snapshot|put|collect|launch|version"))
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "launch":
		os.Exit(agent.Launch())
	case "serve":
		fatal(serve(args))
	case "idle":
		idle()
	case "reset":
		fatal(reset(args))
	case "kill":
		fatal(kill(args))
	case "snapshot":
		fatal(snapshot(args))
	case "put":
		fatal(put(args))
	case "collect":
		fatal(collect(args))
	case "version":
		fmt.Println(name)
	default:
		fatal(fmt.Errorf("unknown command %q", cmd))
	}
}

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "execq-agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// wipeList is a repeatable --wipe flag.
type wipeList []string

func (w *wipeList) String() string     { return strings.Join(*w, ",") }
func (w *wipeList) Set(v string) error { *w = append(*w, v); return nil }

func sandboxFlags(fs *flag.FlagSet) *agent.Sandbox {
	sb := &agent.Sandbox{}
	fs.IntVar(&sb.UID, "uid", 0, "the sandbox user's uid")
	fs.IntVar(&sb.GID, "gid", 0, "the sandbox user's gid")
	fs.Var((*wipeList)(&sb.Wipe), "wipe", "a writable place a reset empties (the first is the workspace; default "+strings.Join(agent.DefaultWipe, ", ")+")")
	return sb
}

func parse(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
}

// threadReserve is how many idle OS threads the agent keeps for itself.
const threadReserve = 16

// workerWait bounds the wait for the worker's connection with --listen.
const workerWait = 30 * time.Second

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sb := sandboxFlags(fs)
	listen := fs.String("listen", "", "serve the worker on this abstract unix socket, which it connects to from outside the sandbox, instead of on stdin and stdout")
	parse(fs, args)
	if sb.UID <= 0 || sb.GID <= 0 {
		return errors.New("serve: --uid and --gid must name an unprivileged user")
	}
	sb.AsAgent = true
	// One execution at a time, mostly waiting on the kernel: a second P
	// only adds thread handoffs and spinning (measured: about 15% more
	// executions per second on a 2-core machine with one P).
	runtime.GOMAXPROCS(1)
	logger := log.New(os.Stderr, "execq-agent: ", 0)
	if os.Getpid() != 1 {
		// Orphans must come to the agent to be reaped and counted.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("become the sandbox's subreaper: %w", err)
		}
	}
	if err := agent.DropBoundingSet(); err != nil {
		return err
	}
	if err := agent.SlackenThreads(); err != nil {
		// Slower, not wrong: the runtime's monitor wakes more often.
		logger.Printf("timer slack left as it is: %v", err)
	}
	agent.ReserveThreads(threadReserve)
	cfg := agent.Config{Sandbox: *sb, Name: name, Log: logger, Trace: true}
	if *listen == "" {
		return agent.Serve(os.Stdin, os.Stdout, cfg)
	}
	c, err := agent.AcceptWorker(*listen, workerWait, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	return agent.Serve(c, c, cfg)
}

// idle waits for ever, as the docker-exec runtime's keepalive; it is
// killed with its container. The container starts every process with the
// largest OOM score; the keepalive lowers its own back to 0, which needs no
// privilege, so that the memory limit never kills it before a command.
func idle() {
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	os.Exit(0)
}

func reset(args []string) error {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	sb := sandboxFlags(fs)
	budget := fs.Duration("budget", 10*time.Second, "the most the reset may take")
	parse(fs, args)
	rep, err := sb.Reset(*budget)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func kill(args []string) error {
	fs := flag.NewFlagSet("kill", flag.ContinueOnError)
	sb := sandboxFlags(fs)
	budget := fs.Duration("budget", 2*time.Second, "the most the kill may take")
	keep := fs.Bool("keep", false, "spare the processes of the snapshot on stdin and their children")
	parse(fs, args)
	if *keep {
		var before agent.Snapshot
		if err := json.NewDecoder(os.Stdin).Decode(&before); err != nil {
			return fmt.Errorf("read the snapshot: %w", err)
		}
		_, err := sb.KillNew(before, time.Now().Add(*budget))
		return err
	}
	_, err := sb.KillAll(time.Now().Add(*budget))
	return err
}

func snapshot(args []string) error {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	sb := sandboxFlags(fs)
	parse(fs, args)
	snap, err := sb.Snapshot()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(snap)
}

func put(args []string) error {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	sb := sandboxFlags(fs)
	maxBytes := fs.Int64("max-bytes", 64<<20, "the largest archive accepted")
	parse(fs, args)
	_, err := sb.Extract(os.Stdin, *maxBytes)
	return err
}

// globList is a repeatable --glob flag.
type globList []string

func (g *globList) String() string     { return strings.Join(*g, ",") }
func (g *globList) Set(v string) error { *g = append(*g, v); return nil }

func collect(args []string) error {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	sb := sandboxFlags(fs)
	var globs globList
	fs.Var(&globs, "glob", "a glob of files to collect, relative to the workspace")
	maxBytes := fs.Int64("max-bytes", 16<<20, "the most content returned")
	maxEntries := fs.Int("max-entries", 1000, "the most entries returned")
	budget := fs.Duration("budget", 10*time.Second, "the most the walk may take")
	parse(fs, args)
	rep, err := sb.Archive(os.Stdout, agent.CollectSpec{
		Globs: globs, MaxBytes: *maxBytes, MaxEntries: *maxEntries, Deadline: time.Now().Add(*budget),
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stderr).Encode(rep)
}
