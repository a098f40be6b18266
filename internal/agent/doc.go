// Package agent is the execq agent's side of a sandbox: what runs inside
// the container. It has two uses.
//
// As PID 1 of a container of the agent runtime, Server speaks the protocol
// of package proto with its worker: it starts commands as the sandbox's
// user, streams their output, reports their exit as soon as their main
// process exits, kills what they leave, puts files in and collects them, and
// resets the sandbox between executions, verifying the result.
//
// As a one-shot helper run by the docker-exec runtime through `docker
// exec`, as the sandbox's user, it does the same resets, kills and file
// transfers, one command at a time (cmd/execq-agent: reset, kill, put,
// collect).
//
// Either way the work is done by this Go code, never by a shell of the
// image: it needs nothing of the image, takes nothing from a tenant's
// environment, and removes trees of any depth and System V IPC objects on
// images without rm or ipcrm.
package agent
