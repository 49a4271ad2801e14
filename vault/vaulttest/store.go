package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// TestStore is the conformance suite of vault.Store: every adapter runs it
// (boltstore now, others later) so they behave alike.
func TestStore(t *testing.T, newStore func(t *testing.T) vault.Store) {
	ctx := context.Background()
	cred := func(name string, rev int64) *vault.Credential {
		return &vault.Credential{Name: name, Type: authtypes.TypeAPIKey, Revision: rev,
			CreateTime: time.Unix(1700000000, 0).UTC(), Labels: map[string]string{"team": "a"},
			Secret: vault.SecretState{Version: 1, Sealed: []byte{1, 2, 3}}}
	}
	t.Run("CreateGetConditions", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetCredential(ctx, "credentials/a"); !errors.Is(err, vault.ErrNotFound) {
			t.Fatalf("GetCredential(missing) = %v, want ErrNotFound", err)
		}
		if err := s.PutCredential(ctx, cred("credentials/a", 1), vault.Condition{MustNotExist: true}, nil); err != nil {
			t.Fatalf("PutCredential(create) = %v", err)
		}
		if err := s.PutCredential(ctx, cred("credentials/a", 1), vault.Condition{MustNotExist: true}, nil); !errors.Is(err, vault.ErrAlreadyExists) {
			t.Fatalf("PutCredential(duplicate) = %v, want ErrAlreadyExists", err)
		}
		got, err := s.GetCredential(ctx, "credentials/a")
		if err != nil || got.Revision != 1 || got.Labels["team"] != "a" || string(got.Secret.Sealed) != "\x01\x02\x03" {
			t.Fatalf("GetCredential = %+v, %v", got, err)
		}
		if err := s.PutCredential(ctx, cred("credentials/a", 2), vault.Condition{Revision: 5}, nil); !errors.Is(err, vault.ErrEtagMismatch) {
			t.Fatalf("PutCredential(stale revision) = %v, want ErrEtagMismatch", err)
		}
		if err := s.PutCredential(ctx, cred("credentials/a", 2), vault.Condition{Revision: 1}, nil); err != nil {
			t.Fatalf("PutCredential(revision 1) = %v", err)
		}
		if err := s.PutCredential(ctx, cred("credentials/zz", 2), vault.Condition{Revision: 1}, nil); !errors.Is(err, vault.ErrNotFound) {
			t.Fatalf("PutCredential(conditional on missing) = %v, want ErrNotFound", err)
		}
		if err := s.DeleteCredential(ctx, "credentials/a", vault.Condition{Revision: 1}, nil); !errors.Is(err, vault.ErrEtagMismatch) {
			t.Fatalf("DeleteCredential(stale) = %v, want ErrEtagMismatch", err)
		}
		if err := s.DeleteCredential(ctx, "credentials/a", vault.Condition{Revision: 2}, nil); err != nil {
			t.Fatalf("DeleteCredential = %v", err)
		}
		if err := s.DeleteCredential(ctx, "credentials/a", vault.Condition{}, nil); !errors.Is(err, vault.ErrNotFound) {
			t.Fatalf("DeleteCredential(again) = %v, want ErrNotFound", err)
		}
	})
	t.Run("ReturnedRecordsAreCopies", func(t *testing.T) {
		s := newStore(t)
		c := cred("credentials/a", 1)
		if err := s.PutCredential(ctx, c, vault.Condition{}, nil); err != nil {
			t.Fatal(err)
		}
		c.Labels["team"] = "changed"
		got, _ := s.GetCredential(ctx, "credentials/a")
		got.Secret.Sealed[0] = 9
		again, _ := s.GetCredential(ctx, "credentials/a")
		if again.Labels["team"] != "a" || again.Secret.Sealed[0] != 1 {
			t.Fatalf("store shares memory with its callers: %+v", again)
		}
		caller := &vault.Caller{Name: "callers/a", Roles: []vault.Role{vault.RoleResolver}, TokenHash: []byte("hash-1"), Revision: 1}
		if err := s.PutCaller(ctx, caller, vault.Condition{MustNotExist: true}, nil); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second read may come from a cache
			got, err := s.CallerByTokenHash(ctx, []byte("hash-1"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Roles[0] != vault.RoleResolver || string(got.TokenHash) != "hash-1" {
				t.Fatalf("store shares caller memory with its callers: %+v", got)
			}
			got.Roles[0], got.TokenHash[0] = vault.RoleAdmin, 'X'
		}
	})
	t.Run("ListPaging", func(t *testing.T) {
		s := newStore(t)
		for i := range 25 {
			if err := s.PutCredential(ctx, cred(fmt.Sprintf("credentials/c%02d", i), 1), vault.Condition{MustNotExist: true}, nil); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		after := ""
		for {
			page, err := s.ListCredentials(ctx, after, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, c := range page {
				names = append(names, c.Name)
			}
			after = page[len(page)-1].Name
		}
		if len(names) != 25 || names[0] != "credentials/c00" || names[24] != "credentials/c24" {
			t.Fatalf("paged names = %v", names)
		}
	})
	t.Run("ConcurrentConditionalWrites", func(t *testing.T) {
		// Many writers race on one revision: exactly one wins.
		s := newStore(t)
		if err := s.PutCredential(ctx, cred("credentials/a", 1), vault.Condition{}, nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s.PutCredential(ctx, cred("credentials/a", 2), vault.Condition{Revision: 1}, nil) == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d conditional writers won, want exactly 1", wins)
		}
	})
	t.Run("Callers", func(t *testing.T) {
		s := newStore(t)
		c := &vault.Caller{Name: "callers/a", Roles: []vault.Role{vault.RoleResolver}, TokenHash: []byte("hash-1"), Revision: 1}
		if err := s.PutCaller(ctx, c, vault.Condition{MustNotExist: true}, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.CallerByTokenHash(ctx, []byte("hash-1")); err != nil || got.Name != "callers/a" {
			t.Fatalf("CallerByTokenHash = %v, %v", got, err)
		}
		rotated := *c
		rotated.TokenHash, rotated.Revision = []byte("hash-2"), 2
		if err := s.PutCaller(ctx, &rotated, vault.Condition{Revision: 1}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CallerByTokenHash(ctx, []byte("hash-1")); !errors.Is(err, vault.ErrNotFound) {
			t.Fatalf("old token after rotation: %v, want ErrNotFound", err)
		}
		if err := s.DeleteCaller(ctx, "callers/a", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CallerByTokenHash(ctx, []byte("hash-2")); !errors.Is(err, vault.ErrNotFound) {
			t.Fatalf("token after delete: %v, want ErrNotFound", err)
		}
	})
	// Reads may be served from memory, but never older than the last
	// acknowledged write: a read that starts after a write returned sees
	// it, however many readers race with the writes.
	t.Run("ReadsSeeAcknowledgedWrites", func(t *testing.T) {
		s := newStore(t)
		const name, writes = "credentials/hot", 200
		if err := s.PutCredential(ctx, cred(name, 1), vault.Condition{MustNotExist: true}, nil); err != nil {
			t.Fatal(err)
		}
		var acked atomic.Int64
		acked.Store(1)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					floor := acked.Load()
					c, err := s.GetCredential(ctx, name)
					if err != nil {
						t.Error(err)
						return
					}
					if c.Revision < floor {
						t.Errorf("read revision %d after revision %d was acknowledged", c.Revision, floor)
						return
					}
				}
			}()
		}
		for rev := int64(2); rev <= writes; rev++ {
			if err := s.PutCredential(ctx, cred(name, rev), vault.Condition{Revision: rev - 1}, nil); err != nil {
				t.Fatal(err)
			}
			acked.Store(rev)
		}
		close(stop)
		wg.Wait()
		if _, err := s.GetCredential(ctx, name); err != nil {
			t.Fatal(err) // cached now
		}
		if err := s.DeleteCredential(ctx, name, vault.Condition{}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetCredential(ctx, name); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("read after an acknowledged delete: %v, want ErrNotFound", err)
		}
	})
	t.Run("Meta", func(t *testing.T) {
		s := newStore(t)
		if v, err := s.Meta(ctx, "k"); err != nil || v != nil {
			t.Fatalf("Meta(missing) = %q, %v", v, err)
		}
		if v, _ := s.InitMeta(ctx, "k", []byte("first")); string(v) != "first" {
			t.Fatalf("InitMeta = %q", v)
		}
		if v, _ := s.InitMeta(ctx, "k", []byte("second")); string(v) != "first" {
			t.Fatalf("InitMeta(again) = %q, want the first value kept", v)
		}
	})
	t.Run("PendingRefreshesFollowWrites", func(t *testing.T) {
		s := newStore(t)
		pending := func(name string, rev int64) *vault.Credential {
			c := cred(name, rev)
			c.Secret.RefreshPending = true
			return c
		}
		steps := []struct {
			name  string
			write func() error
			want  string
		}{
			{"none yet", func() error { return nil }, "[]"},
			{"a pending", func() error {
				return s.PutCredential(ctx, pending("credentials/a", 1), vault.Condition{MustNotExist: true}, nil)
			}, "[credentials/a]"},
			{"b settled", func() error {
				return s.PutCredential(ctx, cred("credentials/b", 1), vault.Condition{MustNotExist: true}, nil)
			}, "[credentials/a]"},
			{"b pending", func() error {
				return s.PutCredential(ctx, pending("credentials/b", 2), vault.Condition{Revision: 1}, nil)
			}, "[credentials/a credentials/b]"},
			{"a settled", func() error { return s.PutCredential(ctx, cred("credentials/a", 2), vault.Condition{Revision: 1}, nil) }, "[credentials/b]"},
			{"failed write changes nothing", func() error {
				if err := s.PutCredential(ctx, pending("credentials/a", 3), vault.Condition{Revision: 9}, nil); !errors.Is(err, vault.ErrEtagMismatch) {
					return fmt.Errorf("conditional write = %v, want ErrEtagMismatch", err)
				}
				return nil
			}, "[credentials/b]"},
			{"b deleted", func() error { return s.DeleteCredential(ctx, "credentials/b", vault.Condition{}, nil) }, "[]"},
		}
		for _, st := range steps {
			if err := st.write(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			names, err := s.PendingRefreshes(ctx)
			if err != nil {
				t.Fatalf("%s: PendingRefreshes: %v", st.name, err)
			}
			if fmt.Sprint(names) != st.want {
				t.Errorf("%s: PendingRefreshes = %v, want %s", st.name, names, st.want)
			}
		}
	})
	t.Run("AuditWithWrites", func(t *testing.T) {
		s := newStore(t)
		ev := func(m string) *auditlog.Event {
			return &auditlog.Event{Time: time.Unix(1700000000, 0), Caller: "callers/admin", Method: m, Outcome: auditlog.OutcomeSuccess}
		}
		if err := s.PutCredential(ctx, cred("credentials/a", 1), vault.Condition{MustNotExist: true}, ev("create")); err != nil {
			t.Fatal(err)
		}
		// A write whose precondition fails leaves no event behind.
		if err := s.PutCredential(ctx, cred("credentials/a", 1), vault.Condition{MustNotExist: true}, ev("dup")); !errors.Is(err, vault.ErrAlreadyExists) {
			t.Fatal(err)
		}
		if err := s.AppendAudit(ctx, []*auditlog.Event{ev("read1"), ev("read2")}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCredential(ctx, "credentials/a", vault.Condition{}, ev("delete")); err != nil {
			t.Fatal(err)
		}
		all, _, err := s.ListAudit(ctx, 0, 100, 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		var methods []string
		for i, e := range all {
			methods = append(methods, e.Method)
			if e.Sequence != int64(i+1) {
				t.Errorf("event %d has sequence %d", i, e.Sequence)
			}
		}
		if fmt.Sprint(methods) != "[create read1 read2 delete]" {
			t.Errorf("audit methods = %v, want [create read1 read2 delete]", methods)
		}
		page, last, err := s.ListAudit(ctx, 1, 1, 1000, func(e *auditlog.Event) bool { return e.Method == "read2" })
		if err != nil || len(page) != 1 || page[0].Sequence != 3 || last != 3 {
			t.Errorf("ListAudit(after 1, filtered) = %v, last %d, %v", page, last, err)
		}
		if ok, checked, bad, err := s.VerifyAudit(ctx); !ok || checked != 4 || bad != 0 || err != nil {
			t.Errorf("VerifyAudit = %v %d %d %v, want ok over 4 events", ok, checked, bad, err)
		}
	})
}
