//go:build linux

package agent

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent/proto"
)

// The descriptors the agent gives the launcher besides standard input,
// output and error.
const (
	launchSpecFD   = 3 // the agent writes the launchSpec, then closes it
	launchReportFD = 4 // closed by the exec; a proto.Failed when it fails
)

// launchSpec is what the launcher needs besides its environment, which is
// the command's.
type launchSpec struct {
	Argv        []string       `json:"argv"`
	Dir         string         `json:"dir"`
	Rlimits     []proto.Rlimit `json:"rlimits,omitempty"`
	OOMScoreAdj int            `json:"oomScoreAdj"`
}

// oomScoreAdj is what every command gets: the memory limit's OOM killer
// takes the user's processes before the agent. Raising it needs no
// privilege, so it is the launcher's to do, before the command runs.
const oomScoreAdj = 1000

// Launch is the launcher: the agent starts this binary as the sandbox's
// user, in a new session, with the command's environment, and it readies
// the process before the command replaces it: resource limits, OOM score,
// working directory, program lookup. Nothing of the command runs before all
// of it is done, and a failure is reported to the agent on a descriptor the
// command never has, so no output of a command can pass for one. It
// returns only when it could not start the command, with the exit code the
// launcher ends with.
func Launch() int {
	spec, err := readSpec()
	if err != nil {
		return report(proto.FailOther, "read the launch spec: "+err.Error())
	}
	for _, l := range spec.Rlimits {
		lim := unix.Rlimit{Cur: l.Soft, Max: l.Hard}
		if err := unix.Setrlimit(l.Resource, &lim); err != nil {
			return report(proto.FailOther, "set resource limit: "+err.Error())
		}
	}
	if spec.OOMScoreAdj != 0 {
		_ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)
	}
	if len(spec.Argv) == 0 {
		return report(proto.FailOther, "no command")
	}
	if err := os.Chdir(spec.Dir); err != nil {
		return report(proto.FailWorkDir, "working directory "+spec.Dir+": "+reason(err))
	}
	program, err := exec.LookPath(spec.Argv[0])
	if errors.Is(err, exec.ErrDot) {
		// Found through a relative entry of PATH, as a shell would run it.
		err = nil
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return report(proto.FailNotFound, spec.Argv[0]+": executable file not found in $PATH")
		}
		return report(proto.FailDenied, spec.Argv[0]+": "+reason(err))
	}
	unix.CloseOnExec(launchReportFD)
	err = unix.Exec(program, spec.Argv, os.Environ())
	switch {
	case errors.Is(err, unix.E2BIG):
		return report(proto.FailTooLarge, "the command's arguments and environment are over the kernel's limit (E2BIG)")
	case errors.Is(err, unix.ENOENT):
		return report(proto.FailNotFound, spec.Argv[0]+": "+reason(err)+" (a missing interpreter?)")
	case errors.Is(err, unix.EAGAIN):
		return report(proto.FailLimit, spec.Argv[0]+": "+reason(err))
	default:
		return report(proto.FailDenied, spec.Argv[0]+": "+reason(err))
	}
}

func readSpec() (launchSpec, error) {
	var spec launchSpec
	f := os.NewFile(launchSpecFD, "spec")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return spec, err
	}
	return spec, json.Unmarshal(b, &spec)
}

// report writes why the command could not start and returns the exit code
// a shell would give: 127 for a program not found, 126 otherwise.
func report(kind, msg string) int {
	b, _ := json.Marshal(proto.Failed{Kind: kind, Message: msg})
	f := os.NewFile(launchReportFD, "report")
	_, _ = f.Write(b)
	f.Close()
	if kind == proto.FailNotFound {
		return 127
	}
	return 126
}

func reason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
