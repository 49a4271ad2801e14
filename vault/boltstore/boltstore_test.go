package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/vaulttest"
)

func TestConformance(t *testing.T) {
	vaulttest.TestStore(t, func(t *testing.T) vault.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), boltstore.FileName), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// The file is consistent when the test is done.
			if err := s.DB().View(func(tx *boltTx) error { return checkTx(tx) }); err != nil {
				t.Errorf("consistency check: %v", err)
			}
			s.Close()
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
