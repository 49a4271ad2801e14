package vault_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
	"github.com/credvault/credvault/vault/boltstore"
)

// flakyAuditStore fails every AppendAudit while fail is set, and panics in
// the next one when panicNext is set.
type flakyAuditStore struct {
	*boltstore.Store
	fail      atomic.Bool
	panicNext atomic.Bool
	appends   atomic.Int64
}

func (s *flakyAuditStore) AppendAudit(ctx context.Context, events []*auditlog.Event) error {
	s.appends.Add(1)
	if s.panicNext.CompareAndSwap(true, false) {
		panic("store bug")
	}
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.Store.AppendAudit(ctx, events)
}

func newAuditEnv(t *testing.T, interval time.Duration) (*vault.Vault, *flakyAuditStore) {
	t.Helper()
	e := newEnv(t, vault.Config{})
	s := &flakyAuditStore{Store: e.store}
	v, err := vault.New(context.Background(), vault.Config{Store: s, Keys: e.keys, Clock: e.clock, AuditCommitInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

func readEvent(i int) *auditlog.Event {
	return &auditlog.Event{Caller: "callers/app", Method: "resolve", Resource: "credentials/r" + string(rune('a'+i%26)), Outcome: auditlog.OutcomeSuccess}
}

// recordAll records n events at once and returns their errors.
func recordAll(ctx context.Context, v *vault.Vault, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = v.RecordEvent(ctx, readEvent(i))
		}()
	}
	wg.Wait()
	return errs
}

func TestGroupCommitSharesCommitsAndLosesNothing(t *testing.T) {
	ctx := context.Background()
	v, s := newAuditEnv(t, 5*time.Millisecond)
	before := v.Stats()
	const n = 300
	for i, err := range recordAll(ctx, v, n) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	after := v.Stats()
	if got := after.AuditEvents - before.AuditEvents; got != n {
		t.Errorf("durable events = %d, want %d", got, n)
	}
	commits := after.AuditCommits - before.AuditCommits
	if commits >= n || commits != s.appends.Load() {
		t.Errorf("%d events took %d commits (%d store appends); want fewer commits than events, one append each", n, commits, s.appends.Load())
	}
	if ok, checked, bad, err := v.VerifyAuditLog(ctx); !ok || err != nil {
		t.Errorf("VerifyAuditLog = %v (checked %d, first bad %d), %v", ok, checked, bad, err)
	}
}

// Audit is fail-closed: when the store cannot make a batch durable, every
// call in it fails, and nothing half-written is left for the next batch.
func TestGroupCommitFailsClosed(t *testing.T) {
	ctx := context.Background()
	v, s := newAuditEnv(t, time.Millisecond)
	s.fail.Store(true)
	for i, err := range recordAll(ctx, v, 50) {
		if !errors.Is(err, vault.ErrAuditUnavailable) {
			t.Fatalf("event %d with the store failing: %v, want ErrAuditUnavailable", i, err)
		}
	}
	s.fail.Store(false)
	for i, err := range recordAll(ctx, v, 50) {
		if err != nil {
			t.Fatalf("event %d after recovery: %v", i, err)
		}
	}
	if ok, _, _, err := v.VerifyAuditLog(ctx); !ok || err != nil {
		t.Errorf("VerifyAuditLog after a failed batch = %v, %v", ok, err)
	}
}

// A caller that gives up (its context ends) must not strand the lead: the
// next event still commits.
func TestGroupCommitSurvivesCallersThatGiveUp(t *testing.T) {
	v, _ := newAuditEnv(t, time.Millisecond)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 50 {
		_ = v.RecordEvent(gone, readEvent(i)) // may commit or give up
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		if err := v.RecordEvent(ctx, readEvent(i)); err != nil {
			t.Fatalf("round %d: the event after one whose caller gave up: %v", i, err)
		}
		stop()
	}
}

// A panic in the store fails its batch (the leader's call panics, to the
// server's recovery) and leaves the group commit working for later events.
func TestGroupCommitSurvivesAPanickingStore(t *testing.T) {
	v, s := newAuditEnv(t, 0)
	s.panicNext.Store(true)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic in the store did not reach the leader's caller")
			}
		}()
		_ = v.RecordEvent(context.Background(), readEvent(0))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, err := range recordAll(ctx, v, 20) {
		if err != nil {
			t.Fatalf("event %d after the panic: %v", i, err)
		}
	}
}

// An event after a quiet spell commits at once: the interval only spaces
// commits under load. (With an hour's interval, waiting for it would time
// the test out.)
func TestGroupCommitLoneEventDoesNotWait(t *testing.T) {
	v, _ := newAuditEnv(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.RecordEvent(ctx, readEvent(0)); err != nil {
		t.Fatalf("a lone event: %v", err)
	}
}
