package pool

import (
	"context"
	"errors"
	"fmt"

	"github.com/execq/execq/internal/sandbox"
)

// Reconcile compares the runtime's containers with the pool's: it removes
// the containers of dead owners, and those of this owner the pool does not
// hold once they are older than OrphanGrace (a creation may be in flight),
// and replaces idle containers that stopped or vanished.
func (p *Pool) Reconcile(ctx context.Context) error {
	infos, err := p.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	listed := make(map[string]bool, len(infos))
	var errs []error
	for _, info := range infos {
		listed[info.ID] = true
		p.mu.Lock()
		e, held := p.all[info.ID]
		p.mu.Unlock()
		switch {
		case held:
			if !info.Running || !alive(e.sb) {
				p.replaceDead(e)
			}
		case info.Owner == p.cfg.Owner:
			if p.cfg.Clock.Now().Sub(info.Created) >= p.cfg.OrphanGrace {
				errs = append(errs, p.removeOrphan(ctx, info, "not held by the pool"))
			}
		case p.cfg.OwnerAlive != nil:
			alive, err := p.cfg.OwnerAlive(ctx, info.Owner)
			if err != nil {
				errs = append(errs, fmt.Errorf("is %s alive: %w", info.Owner, err))
				continue
			}
			if !alive {
				errs = append(errs, p.removeOrphan(ctx, info, "its worker is gone"))
			}
		}
	}
	p.mu.Lock()
	var vanished []*entry
	for id, e := range p.all {
		if !listed[id] && e.state == stateIdle {
			vanished = append(vanished, e)
		}
	}
	p.mu.Unlock()
	for _, e := range vanished {
		p.replaceDead(e)
	}
	return errors.Join(errs...)
}

func (p *Pool) removeOrphan(ctx context.Context, info sandbox.Info, why string) error {
	p.cfg.Logger.Info("removing orphaned container", "container", info.ID[:min(12, len(info.ID))], "owner", info.Owner, "why", why)
	return p.rt.Remove(ctx, info.ID)
}

func (p *Pool) replaceDead(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.state != stateIdle {
		// The execution or reset using it finds out and replaces it.
		return
	}
	for i, x := range p.idle {
		if x == e {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	delete(p.all, e.sb.ID())
	p.cfg.Logger.Warn("an idle container stopped or vanished; replacing it", "container", e.sb.ID()[:min(12, len(e.sb.ID()))])
	p.removeLocked(e, CauseDead)
	p.fillLocked()
}
