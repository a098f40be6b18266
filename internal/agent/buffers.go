package agent

import (
	"sync"

	"github.com/execq/execq/internal/agent/proto"
)

// chunks recycles the buffers every execution and reset needs (output
// reads, directory listings), so that a sandbox serving hundreds of
// executions a second does not spend its CPU collecting them.
var chunks = sync.Pool{New: func() any { b := make([]byte, proto.DataChunk); return &b }}

// getChunk returns a buffer of proto.DataChunk bytes; putChunk gives it back.
func getChunk() *[]byte  { return chunks.Get().(*[]byte) }
func putChunk(b *[]byte) { chunks.Put(b) }
