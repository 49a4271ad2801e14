package boltstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/vaulttest"
)

func TestConformance(t *testing.T) {
	vaulttest.TestStore(t, func(t *testing.T) vault.Store {
		path := filepath.Join(t.TempDir(), boltstore.FileName)
		s, err := boltstore.Open(path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// The file is consistent when the test is done. Checked after
			// a reopen, with no write running: bbolt's check reads the
			// freelist without a lock, and a background fold of the audit
			// journal may still be committing before Close.
			s.Close()
			s, err := boltstore.Open(path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.DB().View(func(tx *boltTx) error { return checkTx(tx) }); err != nil {
				t.Errorf("consistency check: %v", err)
			}
		})
		return s
	})
}

func TestOpenLockedFileTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), boltstore.FileName)
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := boltstore.Open(path, 100*time.Millisecond); err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v; the timeout is not applied", d)
	}
}

// A file written by schema version 1 (no refresh_pending index) gets the
// index built from its records when it is opened; a file from a newer
// build is refused rather than misread.
func TestOpenMigratesSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), boltstore.FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte("meta"))
		creds, _ := tx.CreateBucket([]byte("credentials"))
		if err := meta.Put([]byte("schema_version"), []byte("1")); err != nil {
			return err
		}
		for i, pending := range []bool{false, true, false, true} {
			c := vault.Credential{Name: fmt.Sprintf("credentials/c%d", i), Type: authtypes.TypeOAuth2, Revision: 1,
				Secret: vault.SecretState{Version: 1, RefreshPending: pending}}
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := creds.Put([]byte(c.Name), b); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatalf("opening a version 1 file: %v", err)
	}
	names, err := s.PendingRefreshes(context.Background())
	if err != nil || fmt.Sprint(names) != "[credentials/c1 credentials/c3]" {
		t.Errorf("PendingRefreshes after migration = %v, %v; want [credentials/c1 credentials/c3]", names, err)
	}
	if err := s.PutMeta(context.Background(), "schema_version", []byte("99")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := boltstore.Open(path, time.Second); err == nil || !strings.Contains(err.Error(), `schema version "99"`) {
		t.Errorf("opening a file of a newer schema = %v, want a refusal naming its version", err)
	}
}

// The reserve writes zeros past bbolt's last page inside write
// transactions; across several chunks of growth the file stays consistent,
// the chain verifies, and a reopened store reads everything back.
func TestReserveKeepsDataIntact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), boltstore.FileName)
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const batches, perBatch = 200, 100 // about 4 MiB of audit events
	for b := range batches {
		events := make([]*auditlog.Event, perBatch)
		for i := range events {
			events[i] = &auditlog.Event{Time: time.Unix(1700000000, 0), Caller: "callers/app", Method: "/credvault.v1.ResolverService/ResolveCredential",
				Resource: fmt.Sprintf("credentials/c%05d", b*perBatch+i), Outcome: auditlog.OutcomeSuccess, RequestID: "0123456789abcdef"}
		}
		if err := s.AppendAudit(ctx, events); err != nil {
			t.Fatal(err)
		}
		if b%50 == 0 {
			if err := s.PutCredential(ctx, &vault.Credential{Name: fmt.Sprintf("credentials/c%d", b), Type: authtypes.TypeAPIKey, Revision: 1,
				Secret: vault.SecretState{Version: 1, Sealed: []byte{1}}}, vault.Condition{MustNotExist: true}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close()
	s, err = boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Checked after the reopen, with no write running: bbolt's check reads
	// the freelist without a lock, and a background fold of the audit
	// journal may still be committing before Close.
	if err := s.DB().View(func(tx *boltTx) error { return checkTx(tx) }); err != nil {
		t.Fatalf("consistency check: %v", err)
	}
	if ok, checked, bad, err := s.VerifyAudit(ctx); !ok || checked != batches*perBatch || err != nil {
		t.Errorf("after reopening: VerifyAudit = %v, %d events, first bad %d, %v; want %d events", ok, checked, bad, err, batches*perBatch)
	}
	if cs, err := s.ListCredentials(ctx, "", 100); err != nil || len(cs) != batches/50 {
		t.Errorf("after reopening: %d credentials, %v; want %d", len(cs), err, batches/50)
	}
}
