// Command sockprobe is a tenant's attempt at its agent's socket, for the
// agent runtime's tests: it finds the socket's name in PID 1's command
// line and connects to it, and prints what it got: "refused", "connected"
// or "no socket" (PID 1 serves on its standard input and output).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
)

func main() {
	cmdline, err := os.ReadFile("/proc/1/cmdline")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	name := ""
	for i, a := range args {
		if string(a) == "--listen" && i+1 < len(args) {
			name = string(args[i+1])
		}
	}
	if name == "" {
		fmt.Println("no socket")
		return
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: "@" + name})
	switch {
	case err == nil:
		fmt.Println("connected")
	case errors.Is(err, syscall.ECONNREFUSED):
		fmt.Println("refused")
	default:
		fmt.Println("error:", err)
		os.Exit(1)
	}
}
