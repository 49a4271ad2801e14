package vault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/credvault/credvault/vault/auditlog"
)

// CallAudit is what the vault needs to audit a call: who, what, and the
// request id. The server puts one in the context of every call.
type CallAudit struct {
	Caller    string
	Method    string
	RequestID string

	// recorded is set once a write has committed the call's event in its
	// own transaction; the server then does not record it again.
	recorded atomic.Bool
}

// Recorded reports whether the call's success event is already durable.
func (a *CallAudit) Recorded() bool { return a.recorded.Load() }

type callAuditKey struct{}

// WithCallAudit returns ctx carrying a.
func WithCallAudit(ctx context.Context, a *CallAudit) context.Context {
	return context.WithValue(ctx, callAuditKey{}, a)
}

// CallAuditFrom returns the CallAudit of ctx, or nil.
func CallAuditFrom(ctx context.Context) *CallAudit {
	a, _ := ctx.Value(callAuditKey{}).(*CallAudit)
	return a
}

// successEvent is the audit event of a write about to commit, or nil when
// the call is not audited (offline tools). details must not hold secrets.
func (v *Vault) successEvent(ctx context.Context, resource string, details map[string]string) *auditlog.Event {
	a := CallAuditFrom(ctx)
	if a == nil {
		return nil
	}
	return &auditlog.Event{Time: v.clock.Now(), Caller: a.Caller, Method: a.Method, Resource: resource,
		Outcome: auditlog.OutcomeSuccess, RequestID: a.RequestID, Details: details}
}

// recorded notes that the call's event ev committed with its write, and
// hands it to the sink.
func (v *Vault) recorded(ctx context.Context, ev *auditlog.Event) {
	if ev == nil {
		return
	}
	if a := CallAuditFrom(ctx); a != nil {
		a.recorded.Store(true)
	}
	v.counters.auditEvents.Add(1)
	if v.audit.sink != nil {
		v.audit.sink(ev)
	}
}

// ErrAuditUnavailable means an audit event could not be made durable; the
// call it records must fail (audit is fail-closed).
var ErrAuditUnavailable = errors.New("audit log unavailable")

// RecordEvent makes ev durable, sharing one store transaction (and one disk
// sync) with every other event waiting at the time: group commit. It returns
// once ev is on disk, or with an error wrapping ErrAuditUnavailable.
func (v *Vault) RecordEvent(ctx context.Context, ev *auditlog.Event) error {
	if ev.Time.IsZero() {
		ev.Time = v.clock.Now()
	}
	return v.audit.record(ctx, ev)
}

// groupCommitter batches audit appends. While one batch commits, new events
// queue; the next batch takes them all. An idle committer commits a lone
// event at once, so nobody waits for a timer.
type groupCommitter struct {
	store   Store
	sink    func(*auditlog.Event)
	written *atomic.Int64 // counts durable events
	commits *atomic.Int64 // counts group commits

	mu      sync.Mutex // guards pending and running
	pending []*pendingEvent
	running bool
}

type pendingEvent struct {
	ev   *auditlog.Event
	done chan error
}

func (g *groupCommitter) record(ctx context.Context, ev *auditlog.Event) error {
	p := &pendingEvent{ev: ev, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, p)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		// One committer at a time takes everything waiting, until the queue
		// is empty. It runs on its own goroutine so that no caller's
		// response waits for other callers' batches.
		go g.drain()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The event may still commit; the call fails either way, and the
		// caller sees its own deadline.
		return fmt.Errorf("%w: %w", ErrAuditUnavailable, ctx.Err())
	}
}

func (g *groupCommitter) drain() {
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		events := make([]*auditlog.Event, len(batch))
		for i, p := range batch {
			events[i] = p.ev
		}
		// The batch commits on its own context: one waiter's cancellation
		// must not drop the others' events.
		err := g.store.AppendAudit(context.Background(), events)
		g.commits.Add(1)
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
		} else if g.written.Add(int64(len(events))); g.sink != nil {
			for _, e := range events {
				g.sink(e)
			}
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

// ListAuditEvents returns up to limit events after sequence after that
// match, and the sequence to continue after (0 at the end).
func (v *Vault) ListAuditEvents(ctx context.Context, after int64, limit int, match func(*auditlog.Event) bool) ([]*auditlog.Event, int64, error) {
	const maxScan = 10000
	out, last, err := v.store.ListAudit(ctx, after, limit+1, maxScan, match)
	if err != nil {
		return nil, 0, err
	}
	if len(out) > limit {
		return out[:limit], out[limit-1].Sequence, nil
	}
	// The end, or the scan budget spent: is there anything after last?
	more, _, err := v.store.ListAudit(ctx, last, 1, 1, nil)
	if err != nil {
		return nil, 0, err
	}
	if len(more) > 0 {
		return out, last, nil
	}
	return out, 0, nil
}

// VerifyAuditLog checks the whole hash chain.
func (v *Vault) VerifyAuditLog(ctx context.Context) (ok bool, checked, firstBad int64, err error) {
	return v.store.VerifyAudit(ctx)
}
