package mcpserver

import (
	"context"
	"fmt"
	"iter"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// OwnerOf tells whose an execution is: the owner it was submitted with,
// and whether it is known at all.
type OwnerOf func(ctx context.Context, id string) (owner string, known bool, err error)

// Scoped returns exec limited to the executions of owner: what it submits
// carries owner, and any other execution reads as unknown
// (producer.ErrNotFound), as the HTTP API answers another token's. When
// exec has Sessions, so does the result: the sessions it opens are owner's,
// and it reaches no other owner's (producer.ErrSessionNotFound).
func Scoped(exec Executions, owner string, ownerOf OwnerOf) Executions {
	s := scoped{exec: exec, owner: owner, ownerOf: ownerOf}
	if sessions, ok := exec.(Sessions); ok {
		return scopedSessions{scoped: s, sessions: sessions}
	}
	return s
}

type scoped struct {
	exec    Executions
	owner   string
	ownerOf OwnerOf
}

func (s scoped) check(ctx context.Context, id string) error {
	owner, known, err := s.ownerOf(ctx, id)
	if err != nil {
		return err
	}
	if !known || owner != s.owner {
		return fmt.Errorf("%s: %w", id, producer.ErrNotFound)
	}
	return nil
}

func (s scoped) Submit(ctx context.Context, req tasks.ExecRequest) (string, error) {
	req.Owner = s.owner
	return s.exec.Submit(ctx, req)
}

func (s scoped) Follow(ctx context.Context, id, from string) iter.Seq2[tasks.Event, error] {
	if err := s.check(ctx, id); err != nil {
		return func(yield func(tasks.Event, error) bool) { yield(tasks.Event{}, err) }
	}
	return s.exec.Follow(ctx, id, from)
}

func (s scoped) Result(ctx context.Context, id string) (*tasks.Result, error) {
	if err := s.check(ctx, id); err != nil {
		return nil, err
	}
	return s.exec.Result(ctx, id)
}

func (s scoped) Wait(ctx context.Context, id string) (*tasks.Result, error) {
	if err := s.check(ctx, id); err != nil {
		return nil, err
	}
	return s.exec.Wait(ctx, id)
}

func (s scoped) Started(ctx context.Context, id string) (bool, error) {
	if err := s.check(ctx, id); err != nil {
		return false, err
	}
	return s.exec.Started(ctx, id)
}

func (s scoped) Cancel(ctx context.Context, id string) error {
	if err := s.check(ctx, id); err != nil {
		return err
	}
	return s.exec.Cancel(ctx, id)
}

// scopedSessions is a scoped whose Executions has Sessions.
type scopedSessions struct {
	scoped
	sessions Sessions
}

// CreateSession opens a session of the scope's owner.
func (s scopedSessions) CreateSession(ctx context.Context, req tasks.SessionRequest) (*producer.Session, error) {
	req.Owner = s.owner
	return s.sessions.CreateSession(ctx, req)
}

// SessionOf returns a handle on the session id of the scope's owner,
// whichever owner is asked for.
func (s scopedSessions) SessionOf(id, _ string) *producer.Session {
	return s.sessions.SessionOf(id, s.owner)
}
