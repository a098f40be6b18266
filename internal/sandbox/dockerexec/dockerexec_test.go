//go:build integration

package dockerexec_test

import (
	"os"
	"strings"
	"testing"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/internal/sandbox/sandboxtest"
	"github.com/execq/execq/internal/testutil"
)

func TestContract(t *testing.T) {
	sandboxtest.Exercise(t, func(t *testing.T) sandbox.Runtime {
		return testutil.NewRuntime(t, testutil.Docker(t), dockerexec.Name, "test-dockerexec-"+strings.ReplaceAll(t.Name(), "/", "-"), testutil.RuntimeOptions{})
	}, sandboxtest.Options{Image: testutil.SandboxImage, KillsInPlace: false, GVisor: os.Getenv("EXECQ_TEST_OCI_RUNTIME") == "runsc"})
}
