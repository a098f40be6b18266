//go:build integration

package dockerexec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/internal/sandbox/sandboxtest"
	"github.com/execq/execq/internal/testutil"
)

// TestContract runs the contract suite; under gVisor, where the runtime is
// refused, it checks the refusal instead.
func TestContract(t *testing.T) {
	if testutil.GVisor() {
		TestRefusedUnderGVisor(t)
		return
	}
	sandboxtest.Exercise(t, func(t *testing.T) sandbox.Runtime {
		return testutil.NewRuntime(t, testutil.Docker(t), dockerexec.Name, "test-dockerexec-"+strings.ReplaceAll(t.Name(), "/", "-"), testutil.RuntimeOptions{})
	}, sandboxtest.Options{Image: testutil.SandboxImage, KillsInPlace: false, GVisor: testutil.GVisor()})
}

// Under gVisor the agent's binary must be readable by the sandbox's user,
// and the docker-exec runtime's helpers, which run as that user, would be
// open to its ptrace: the runtime refuses such an engine.
func TestRefusedUnderGVisor(t *testing.T) {
	c := testutil.Docker(t)
	engine, err := docker.NewEngine(c, docker.Config{Owner: "test-dockerexec-gvisor", OCIRuntime: "runsc", AgentBinary: testutil.AgentBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !engine.UserReadsAgent() {
		t.Error("under gVisor the user cannot read the agent's binary, which gVisor needs to execute it")
	}
	if _, err := dockerexec.New(engine, c, dockerexec.Config{}); !errors.Is(err, dockerexec.ErrUnderGVisor) {
		t.Errorf("dockerexec.New under gVisor: %v, want ErrUnderGVisor", err)
	}
}
