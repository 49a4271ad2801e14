package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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

// appendAudit stores events at the end of the chain, inside the caller's
// write transaction: first the journal's pending events (already linked
// and durable; a write commits them to the bucket before its own), then
// events, linked after them. The caller holds the chain lock (shared for a
// write, exclusive for a group commit) or, folding alone, links nothing.
func (s *Store) appendAudit(tx *bolt.Tx, events ...*auditlog.Event) error {
	b := tx.Bucket(bucketAudit)
	b.FillPercent = 1.0 // append-only, in key order: fill pages completely
	prev, err := lastAudit(tx)
	if err != nil {
		return err
	}
	var after int64
	if prev != nil {
		after = prev.Sequence
	}
	if pending, stale := s.journal.pendingAfter(after); len(pending) > 0 || stale {
		for _, p := range pending {
			// A journaled event that does not continue the chain would
			// fork it: fail loudly instead.
			e := p.event
			if e.Sequence != after+1 || (prev != nil && !bytes.Equal(e.PrevHash, prev.Hash)) {
				return fmt.Errorf("journaled audit event %d does not follow %d: %w", e.Sequence, after, vault.ErrCorrupt)
			}
			if err := b.Put(seqKey(e.Sequence), p.stored); err != nil {
				return err
			}
			after, prev = e.Sequence, e
		}
		// Once this commit is durable, so is every pending event up to
		// after: those folded here, and any an earlier fold committed
		// whose handler has not run yet.
		folded := after
		tx.OnCommit(func() { s.journal.folded(folded) })
	}
	for _, e := range events {
		if e == nil {
			continue
		}
		rec := auditlog.AppendLinked(nil, prev, e)
		if err := b.Put(seqKey(e.Sequence), rec); err != nil {
			return err
		}
		prev = e
	}
	return nil
}

// AppendAudit implements vault.Store: the events go to the journal, with
// one disk sync (see journal.go). When they do not fit, or the journal
// failed, they are committed to the bucket with everything pending before
// them.
func (s *Store) AppendAudit(_ context.Context, events []*auditlog.Event) error {
	if slices.Contains(events, nil) {
		events = slices.DeleteFunc(slices.Clone(events), func(e *auditlog.Event) bool { return e == nil })
	}
	if len(events) == 0 {
		return nil
	}
	s.chain.Lock()
	defer s.chain.Unlock()
	journaled, foldNow, jerr := s.journal.append(s.db, events)
	if foldNow {
		s.folds.Add(1)
		go func() {
			defer s.folds.Done()
			defer s.journal.foldDone()
			// A failed fold leaves the events pending: the next write,
			// fold or bucket commit takes them along.
			_ = s.fold()
		}()
	}
	if journaled {
		return nil
	}
	err := s.commitAudit(events...)
	if err != nil && jerr != nil {
		err = errors.Join(jerr, err)
	}
	return err
}

// commitAudit commits the journal's pending events and then events to the
// bucket, in a transaction of its own. It takes no chain lock: AppendAudit
// holds it already, and a fold (no events) changes no sequence.
func (s *Store) commitAudit(events ...*auditlog.Event) error {
	return s.db.Update(s.reserve.around(func(tx *bolt.Tx) error { return s.appendAudit(tx, events...) }))
}

// fold commits the journal's pending events to the bucket. Readers of the
// bucket (listing, verification, backup, close) fold first, to see every
// acknowledged event.
func (s *Store) fold() error {
	if s.journal.pendingCount() == 0 {
		return nil
	}
	return s.commitAudit()
}

// replayJournal folds the journal's events that continue the bucket's
// chain into it, on open: every one that was acknowledged before the
// process stopped, and any a crash left of a group commit it never
// answered (as if the crash had come a moment later).
func replayJournal(db *bolt.DB, records []pendingEvent) error {
	if len(records) == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		last, err := lastAudit(tx)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketAudit)
		b.FillPercent = 1.0
		for _, r := range chainTail(last, records) {
			if err := b.Put(seqKey(r.event.Sequence), r.stored); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListAudit implements vault.Store.
func (s *Store) ListAudit(_ context.Context, after int64, limit, maxScan int, match func(*auditlog.Event) bool) ([]*auditlog.Event, int64, error) {
	if err := s.fold(); err != nil {
		return nil, 0, err
	}
	var out []*auditlog.Event
	last := after
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		scanned := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit && scanned < maxScan; k, v = c.Next() {
			scanned++
			e, err := decodeAudit(k, v)
			if err != nil {
				return err
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
	if err := s.fold(); err != nil {
		return false, 0, 0, err
	}
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

// FileVerification is what VerifyFile found.
type FileVerification struct {
	OK       bool
	Checked  int64 // events verified, in the file and in the journal
	FirstBad int64 // the sequence of the first event that fails, when not OK
	// Journaled counts the events among Checked that are still in the
	// audit journal: the vault stopped without closing, and its next start
	// folds them into the file.
	Journaled int64
}

// VerifyFile verifies the audit chain of a database file that no vault has
// open (credvaultd audit verify), continued by its audit journal. It opens
// the file read-only and needs no key: the chain covers only non-secret
// fields.
func VerifyFile(path string, timeout time.Duration) (FileVerification, error) {
	var out FileVerification
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return out, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	var v auditlog.Verifier
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAudit) == nil {
			return fmt.Errorf("%s has no audit log", path)
		}
		if err := VerifyTx(tx, &v); err != nil {
			return err
		}
		if ok, _, _ := v.Result(); !ok {
			return nil
		}
		records, err := readJournalFile(tx, path+JournalSuffix)
		if err != nil {
			return err
		}
		last, err := lastAudit(tx)
		if err != nil {
			return err
		}
		// chainTail took only what links after the verified head, so the
		// verifier goes on through it.
		for _, r := range chainTail(last, records) {
			if v.Check(r.event) != nil {
				return nil
			}
			out.Journaled++
		}
		return nil
	})
	out.OK, out.Checked, out.FirstBad = v.Result()
	return out, err
}
