// Command fakeagent is an agent that misbehaves, for the agent runtime's
// failure tests. Its behavior is set at build time:
//
//	go build -ldflags "-X main.behavior=version" ./internal/sandbox/agentrt/testdata/fakeagent
//
//	version  says it speaks another protocol version
//	silent   never says anything
//	liar     answers an Exec with an Exit, skipping Started
//	dies     answers an Exec with Started, then exits
//	hangs    answers an Exec with Started, then stops answering anything
//	deaf     never listens on the socket it is given (--listen)
//
// With --listen it serves on that socket, as the agent does.
package main

import (
	"io"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/execq/execq/internal/agent"
	"github.com/execq/execq/internal/agent/proto"
)

var behavior = "liar"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "idle" {
		select {}
	}
	uid, gid := flagInt("--uid"), flagInt("--gid")
	var in io.Reader = os.Stdin
	var out io.Writer = os.Stdout
	if name := flagString("--listen"); name != "" {
		if behavior == "deaf" {
			time.Sleep(time.Hour)
		}
		c, err := agent.AcceptWorker(name, time.Minute, log.New(os.Stderr, "fakeagent: ", 0))
		if err != nil {
			os.Exit(1)
		}
		in, out = c, c
	}
	w := proto.NewWriter(out)
	r := proto.NewReader(in)
	switch behavior {
	case "deaf":
		time.Sleep(time.Hour)
	case "silent":
		time.Sleep(time.Hour)
	case "version":
		_ = w.WriteJSON(proto.THello, proto.Hello{Version: proto.Version + 1, Agent: "fakeagent", UID: uid, GID: gid})
		_, _ = r.Read()
		time.Sleep(time.Hour)
	}
	_ = w.WriteJSON(proto.THello, proto.Hello{Version: proto.Version, Agent: "fakeagent", UID: uid, GID: gid})
	if _, err := r.Read(); err != nil {
		os.Exit(1)
	}
	for {
		f, err := r.Read()
		if err != nil {
			os.Exit(0)
		}
		switch f.Type {
		case proto.TExec:
			switch behavior {
			case "liar":
				_ = w.WriteJSON(proto.TExit, proto.Exit{Code: 0})
			case "dies":
				_ = w.WriteJSON(proto.TStarted, proto.Started{Pid: 2})
				os.Exit(3)
			case "hangs":
				_ = w.WriteJSON(proto.TStarted, proto.Started{Pid: 2})
				time.Sleep(time.Hour)
			}
		default:
			_ = w.WriteJSON(proto.TDone, proto.Done{})
		}
	}
}

func flagInt(name string) int {
	n, _ := strconv.Atoi(flagString(name))
	return n
}

func flagString(name string) string {
	for i, a := range os.Args {
		if a == name && i+1 < len(os.Args) {
			return os.Args[i+1]
		}
	}
	return ""
}
