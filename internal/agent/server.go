//go:build linux

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"time"

	"github.com/execq/execq/internal/agent/proto"
)

// Config configures a Server.
type Config struct {
	// Sandbox is the sandbox the agent serves.
	Sandbox Sandbox
	// Launcher is the path of the agent's own binary, which starts every
	// command. Defaults to /proc/self/exe.
	Launcher string
	// Name names the agent's build in its Hello.
	Name string
	// Trace starts commands stopped at their exec, readied by the agent,
	// where the kernel allows it; otherwise through the launcher.
	Trace bool
	// Log receives the agent's own messages. Defaults to discarding them.
	Log *log.Logger
}

// Server serves one worker over one channel. Its zero value is not
// usable; Serve makes one.
type Server struct {
	cfg    Config
	in     *proto.Reader
	out    *proto.Writer
	outMu  sync.Mutex
	reaper *reaper
	exec   *execution // the command in progress, or nil
	// traced: commands start stopped at their exec and are readied by the
	// agent (probeTracing), instead of through the launcher.
	traced bool
}

// ErrProtocol is returned for a frame the protocol does not allow.
var ErrProtocol = errors.New("protocol error")

// Serve speaks the agent's side of the protocol on in and out until the
// worker closes in (it returns nil then) or breaks the protocol.
func Serve(in io.Reader, out io.Writer, cfg Config) error {
	if cfg.Launcher == "" {
		cfg.Launcher = "/proc/self/exe"
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	s := &Server{cfg: cfg, in: proto.NewReader(bufio.NewReaderSize(in, 64<<10)), out: proto.NewWriter(out)}
	s.traced = cfg.Trace && probeTracing(cfg.Launcher, cfg.Sandbox)
	s.reaper = newReaper()
	defer s.reaper.close()
	if err := s.handshake(); err != nil {
		return err
	}
	for {
		f, err := s.in.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read a frame: %w", err)
		}
		if err := s.handle(f); err != nil {
			return err
		}
	}
}

func (s *Server) handshake() error {
	sb := s.cfg.Sandbox
	spawn := proto.SpawnLauncher
	if s.traced {
		spawn = proto.SpawnTraced
	}
	if err := s.sendJSON(proto.THello, proto.Hello{Version: proto.Version, Agent: s.cfg.Name, UID: sb.UID, GID: sb.GID, Spawn: spawn}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	f, err := s.in.Read()
	if err != nil {
		return fmt.Errorf("read the worker's hello: %w", err)
	}
	var h proto.Hello
	if f.Type != proto.THello || f.Decode(&h) != nil {
		return fmt.Errorf("%w: the worker's first frame is %s, not hello", ErrProtocol, f.Type)
	}
	if h.Version != proto.Version {
		return fmt.Errorf("the worker speaks protocol version %d, this agent %d", h.Version, proto.Version)
	}
	return nil
}

func (s *Server) handle(f proto.Frame) error {
	if s.exec != nil && s.exec.finished.Load() {
		s.exec = nil
	}
	switch f.Type {
	case proto.TPing:
		// Answered at any time: the worker pings a silent command's agent
		// to know it still serves.
		return s.done(proto.Done{})
	case proto.TStdin:
		if s.exec != nil {
			s.exec.stdin(f.Payload)
		}
		// Input sent as the command exited is dropped.
		return nil
	case proto.TKill:
		var k proto.Kill
		if err := f.Decode(&k); err != nil {
			return err
		}
		if s.exec != nil {
			s.exec.kill()
			return nil
		}
		_, err := s.cfg.Sandbox.KillAll(time.Now().Add(killBudget))
		if k.Exec {
			// The Exit has been sent already; it is the answer.
			return nil
		}
		return s.done(proto.Done{Error: errString(err)})
	}
	if s.exec != nil {
		return fmt.Errorf("%w: %s while a command runs", ErrProtocol, f.Type)
	}
	switch f.Type {
	case proto.TExec:
		var x proto.Exec
		if err := f.Decode(&x); err != nil {
			return err
		}
		return s.startExec(x)
	case proto.TPut:
		var p proto.Put
		if err := f.Decode(&p); err != nil {
			return err
		}
		return s.put(p)
	case proto.TCollect:
		var c proto.Collect
		if err := f.Decode(&c); err != nil {
			return err
		}
		return s.collect(c)
	case proto.TReset:
		var r proto.Reset
		if err := f.Decode(&r); err != nil {
			return err
		}
		rep, err := s.cfg.Sandbox.Reset(time.Duration(r.BudgetMillis) * time.Millisecond)
		if err != nil {
			s.cfg.Log.Printf("reset: %v", err)
		}
		return s.done(proto.Done{Error: errString(err), Reset: &rep})
	}
	return fmt.Errorf("%w: unexpected %s frame", ErrProtocol, f.Type)
}

// killBudget bounds a kill: processes that outlive it are reported.
const killBudget = 2 * time.Second

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Server) send(t proto.Type, p []byte) error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.out.Write(t, p)
}

func (s *Server) sendJSON(t proto.Type, v any) error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.out.WriteJSON(t, v)
}

func (s *Server) done(d proto.Done) error { return s.sendJSON(proto.TDone, d) }

// put reads a tar archive from Data frames into the workspace.
func (s *Server) put(p proto.Put) error {
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	go func() {
		_, err := s.cfg.Sandbox.Extract(pr, p.MaxBytes)
		// Whatever is left of the archive is read and dropped.
		pr.CloseWithError(errors.Join(err, errors.New("archive not read")))
		result <- err
	}()
	for {
		f, err := s.in.Read()
		if err != nil {
			pw.CloseWithError(err)
			<-result
			return fmt.Errorf("read the archive: %w", err)
		}
		if f.Type != proto.TData {
			pw.CloseWithError(ErrProtocol)
			<-result
			return fmt.Errorf("%w: %s inside an archive", ErrProtocol, f.Type)
		}
		if len(f.Payload) == 0 {
			pw.Close()
			break
		}
		_, _ = pw.Write(f.Payload)
	}
	return s.done(proto.Done{Error: errString(<-result)})
}

// collect writes the archive of the matching files as Data frames.
func (s *Server) collect(c proto.Collect) error {
	w := &frameWriter{s: s}
	bw := bufio.NewWriterSize(w, proto.DataChunk)
	rep, err := s.cfg.Sandbox.Archive(bw, CollectSpec{
		Globs:      c.Globs,
		MaxBytes:   c.MaxBytes,
		MaxEntries: c.MaxEntries,
		Deadline:   time.Now().Add(time.Duration(c.BudgetMillis) * time.Millisecond),
	})
	if ferr := bw.Flush(); ferr != nil {
		return ferr
	}
	if w.err != nil {
		return w.err
	}
	if err := s.send(proto.TData, nil); err != nil {
		return err
	}
	return s.done(proto.Done{Error: errString(err), Collect: &rep})
}

// frameWriter sends what is written to it as Data frames.
type frameWriter struct {
	s   *Server
	err error
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	for n := 0; n < len(p); {
		end := min(len(p), n+proto.DataChunk)
		if err := w.s.send(proto.TData, p[n:end]); err != nil {
			w.err = err
			return n, err
		}
		n = end
	}
	return len(p), nil
}
