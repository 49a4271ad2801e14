package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// Audit events live in the audit bucket under their sequence, big-endian, so
// bbolt's key order is the chain's order.

func seqKey(seq int64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(seq))
	return k[:]
}

// appendAudit links events to the last stored event and stores them, inside
// the caller's write transaction. The chain state is read from the
// transaction itself, never kept outside it.
func appendAudit(tx *bolt.Tx, events ...*auditlog.Event) error {
	b := tx.Bucket(bucketAudit)
	b.FillPercent = 1.0 // append-only, in key order: fill pages completely
	var prev *auditlog.Event
	if k, v := b.Cursor().Last(); k != nil {
		p, err := auditlog.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("audit event %d: %w", binary.BigEndian.Uint64(k), vault.ErrCorrupt)
		}
		prev = p
	}
	for _, e := range events {
		if e == nil {
			continue
		}
		auditlog.Link(prev, e)
		val, err := auditlog.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding audit event: %w", err)
		}
		if err := b.Put(seqKey(e.Sequence), val); err != nil {
			return err
		}
		prev = e
	}
	return nil
}

// AppendAudit implements vault.Store.
func (s *Store) AppendAudit(_ context.Context, events []*auditlog.Event) error {
	return s.update(func(tx *bolt.Tx) error { return appendAudit(tx, events...) })
}

// ListAudit implements vault.Store.
func (s *Store) ListAudit(_ context.Context, after int64, limit, maxScan int, match func(*auditlog.Event) bool) ([]*auditlog.Event, int64, error) {
	var out []*auditlog.Event
	last := after
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		scanned := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit && scanned < maxScan; k, v = c.Next() {
			scanned++
			e, err := auditlog.Unmarshal(v)
			if err != nil {
				return fmt.Errorf("audit event %d: %w", binary.BigEndian.Uint64(k), vault.ErrCorrupt)
			}
			last = int64(binary.BigEndian.Uint64(k))
			if match == nil || match(e) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, last, err
}

// VerifyAudit implements vault.Store. It reads in one read transaction, so
// it sees a consistent chain while writers go on.
func (s *Store) VerifyAudit(_ context.Context) (bool, int64, int64, error) {
	var v auditlog.Verifier
	err := s.db.View(func(tx *bolt.Tx) error {
		return VerifyTx(tx, &v)
	})
	ok, checked, bad := v.Result()
	return ok, checked, bad, err
}

// VerifyTx feeds every stored event to v, stopping at the first break. An
// event that does not decode counts as the break at its key's sequence.
func VerifyTx(tx *bolt.Tx, v *auditlog.Verifier) error {
	c := tx.Bucket(bucketAudit).Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		e, err := auditlog.Unmarshal(val)
		if err != nil {
			e = &auditlog.Event{Sequence: int64(binary.BigEndian.Uint64(k))} // fails Check
		}
		if v.Check(e) != nil {
			return nil
		}
	}
	return nil
}

// VerifyFile verifies the audit chain of a database file that no vault has
// open (credvaultd audit verify). It opens the file read-only and needs no
// key: the chain covers only non-secret fields.
func VerifyFile(path string, timeout time.Duration) (ok bool, checked, firstBad int64, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return false, 0, 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	var v auditlog.Verifier
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAudit) == nil {
			return fmt.Errorf("%s has no audit log", path)
		}
		return VerifyTx(tx, &v)
	})
	ok, checked, firstBad = v.Result()
	return ok, checked, firstBad, err
}
