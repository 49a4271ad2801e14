// Package boltstore implements vault.Store on a bbolt file.
//
// Every write is one bbolt transaction (all or nothing, fsynced before it
// returns; concurrent writes may share a commit through bbolt's Batch);
// preconditions are checked inside it. Group commits of audit events go to
// the audit journal instead, with one disk sync (journal.go). Nothing here
// calls the network, so the single bbolt writer is never held across I/O
// other than the disk.
package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// Bucket names. The layout is versioned by metaSchemaVersion.
var (
	bucketCredentials = []byte("credentials")
	bucketCallers     = []byte("callers")
	bucketTokenIndex  = []byte("caller_tokens") // sha256(token) -> caller name
	bucketMTLSIndex   = []byte("caller_mtls")   // mTLS identity -> caller name
	bucketAudit       = []byte("audit")
	bucketSessions    = []byte("authorization_sessions")
	// bucketPendingRefresh indexes the credentials whose record has
	// Secret.RefreshPending set (name -> empty), kept in step by every
	// write of a credential, so start-up finds cut-off refreshes without
	// reading every record.
	bucketPendingRefresh = []byte("refresh_pending")
	bucketMeta           = []byte("meta")

	metaSchemaVersion = []byte("schema_version")
)

// SchemaVersion is the layout version this package writes. Version 2 added
// the refresh_pending index; version 3 the audit journal beside the file,
// whose events an older build would not fold in (it would link new events
// over them). Older files are migrated on open, and an older build then
// refuses the file.
const SchemaVersion = "3"

// FileName is the database file in the data dir.
const FileName = "credvault.db"

// Store is a vault.Store on bbolt.
type Store struct {
	db      *bolt.DB
	reserve *reserve
	journal *journal
	// chain orders audit group commits (held exclusively) against writes
	// (held shared across their transaction), which may link audit events.
	chain       sync.RWMutex
	folds       sync.WaitGroup // background folds of the journal
	closed      bool           // guarded by chain
	writers     atomic.Int64   // writes in flight, to choose Update or Batch
	credentials *decodedCache[vault.Credential]
	callers     *decodedCache[vault.Caller]
}

// DecodedCacheSize bounds how many decoded credentials (and callers) a
// Store keeps in memory for the hot path.
const DecodedCacheSize = 100_000

var _ vault.Store = (*Store)(nil)

// Open opens (or creates) the database at path with mode 0600. It waits at
// most timeout for the file lock held by another process.
func Open(path string, timeout time.Duration) (*Store, error) {
	// The freelist is not synced on each commit (bbolt rebuilds it by
	// scanning on open): every commit, including each audit group commit,
	// writes fewer pages. Durability of the data is unchanged.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	var journalID []byte
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		version := meta.Get(metaSchemaVersion)
		for _, b := range [][]byte{bucketCredentials, bucketCallers, bucketTokenIndex, bucketMTLSIndex, bucketAudit, bucketSessions, bucketPendingRefresh} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if journalID, err = journalIDOf(tx); err != nil {
			return err
		}
		switch string(version) {
		case SchemaVersion:
			return nil
		case "": // a new file
		case "1":
			if err := indexPendingRefreshes(tx); err != nil {
				return err
			}
		case "2": // the journal needs nothing in the file but its id
		default:
			return fmt.Errorf("schema version %q, this build reads %q", version, SchemaVersion)
		}
		return meta.Put(metaSchemaVersion, []byte(SchemaVersion))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	// A lone write waits at most this long for company before committing.
	db.MaxBatchDelay = 300 * time.Microsecond
	j, records, err := openJournal(path+JournalSuffix, journalID)
	if err != nil {
		db.Close()
		return nil, err
	}
	fail := func(err error) (*Store, error) {
		j.close()
		db.Close()
		return nil, err
	}
	if err := replayJournal(db, records); err != nil {
		return fail(fmt.Errorf("replaying the audit journal of %s: %w", path, err))
	}
	if err := j.format(); err != nil {
		return fail(err)
	}
	r, err := openReserve(path)
	if err != nil {
		return fail(err)
	}
	return &Store{db: db, reserve: r, journal: j,
		credentials: newDecodedCache(DecodedCacheSize, (*vault.Credential).Clone),
		callers:     newDecodedCache(DecodedCacheSize, cloneCaller),
	}, nil
}

// write runs fn in a write transaction. A lone writer commits at once; when
// other writes are in flight, they share commits (bbolt Batch), and each
// call still returns only once its write is durable. fn may then run twice
// (when another write in the batch fails): it must read everything it
// checks and links from the transaction, so that a rerun is the same write.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	s.chain.RLock()
	defer s.chain.RUnlock()
	defer s.writers.Add(-1)
	fn = s.reserve.around(fn)
	if s.writers.Add(1) == 1 {
		return s.db.Update(fn)
	}
	return s.db.Batch(fn)
}

// update runs fn in a write transaction of its own.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.chain.RLock()
	defer s.chain.RUnlock()
	return s.db.Update(s.reserve.around(fn))
}

// Close closes the database; it waits for open transactions. It folds the
// audit journal into the database first and, when that worked, removes
// it: after a clean close the database file alone holds the whole log. The
// journal goes before the database, whose file lock the next process to
// open it waits for: that process must not find a journal still about to
// be removed. Holding the chain lock keeps any call still running from
// writing or appending meanwhile; it then fails on the closed database.
func (s *Store) Close() error {
	s.chain.Lock()
	defer s.chain.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.folds.Wait()
	folded := s.fold()
	err := s.journal.close()
	if folded == nil && err == nil && s.journal.pendingCount() == 0 {
		err = s.journal.remove()
	}
	if derr := s.db.Close(); err == nil {
		err = derr
	}
	if rerr := s.reserve.close(); err == nil {
		err = rerr
	}
	return errors.Join(folded, err)
}

// DB exposes the bbolt handle, for tests that read the file. A write
// through it would bypass the chain lock, the audit journal and the
// decoded caches.
func (s *Store) DB() *bolt.DB { return s.db }

// GetCredential implements vault.Store.
func (s *Store) GetCredential(_ context.Context, name string) (*vault.Credential, error) {
	if c, ok := s.credentials.lookup(name); ok {
		return c, nil
	}
	gen := s.credentials.generation()
	c := new(vault.Credential)
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketCredentials), name, c)
	})
	if err != nil {
		return nil, err
	}
	return s.credentials.fill(name, c, gen), nil
}

// ListCredentials implements vault.Store.
func (s *Store) ListCredentials(_ context.Context, after string, limit int) ([]*vault.Credential, error) {
	return list[vault.Credential](s.db, bucketCredentials, after, limit)
}

// list decodes up to limit records of bucket whose keys sort after after.
func list[T any](db *bolt.DB, bucket []byte, after string, limit int) ([]*T, error) {
	var out []*T
	err := db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucket).Cursor()
		k, v := cur.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = cur.Next()
		}
		for ; k != nil && len(out) < limit; k, v = cur.Next() {
			var r T
			if err := decode(k, v, &r); err != nil {
				return err
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}

// PutCredential implements vault.Store.
func (s *Store) PutCredential(_ context.Context, c *vault.Credential, cond vault.Condition, ev *auditlog.Event) error {
	val, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", c.Name, err)
	}
	defer s.credentials.invalidate(c.Name)
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCredentials)
		if err := checkCredential(b, c.Name, cond); err != nil {
			return err
		}
		if err := b.Put([]byte(c.Name), val); err != nil {
			return err
		}
		if err := markPendingRefresh(tx, c.Name, c.Secret.RefreshPending); err != nil {
			return err
		}
		return s.appendAudit(tx, ev)
	})
}

// markPendingRefresh keeps the refresh_pending index in step with the
// record name being written (pending) or deleted (false).
func markPendingRefresh(tx *bolt.Tx, name string, pending bool) error {
	b := tx.Bucket(bucketPendingRefresh)
	if pending {
		return b.Put([]byte(name), []byte{})
	}
	return b.Delete([]byte(name))
}

// indexPendingRefreshes builds the refresh_pending index from every stored
// credential: the one-time migration from schema version 1.
func indexPendingRefreshes(tx *bolt.Tx) error {
	return tx.Bucket(bucketCredentials).ForEach(func(k, v []byte) error {
		var c struct {
			Secret struct {
				RefreshPending bool `json:"refresh_pending"`
			} `json:"secret"`
		}
		if err := decode(k, v, &c); err != nil {
			return err
		}
		return markPendingRefresh(tx, string(k), c.Secret.RefreshPending)
	})
}

// PendingRefreshes implements vault.Store.
func (s *Store) PendingRefreshes(_ context.Context) ([]string, error) {
	var names []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPendingRefresh).ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	return names, err
}

// DeleteCredential implements vault.Store.
func (s *Store) DeleteCredential(_ context.Context, name string, cond vault.Condition, ev *auditlog.Event) error {
	defer s.credentials.invalidate(name)
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCredentials)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("%s: %w", name, vault.ErrNotFound)
		}
		if err := checkCredential(b, name, cond); err != nil {
			return err
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		if err := markPendingRefresh(tx, name, false); err != nil {
			return err
		}
		return s.appendAudit(tx, ev)
	})
}

// checkCredential checks cond against the stored record, inside the write
// transaction.
func checkCredential(b *bolt.Bucket, name string, cond vault.Condition) error {
	v := b.Get([]byte(name))
	switch {
	case cond.MustNotExist && v != nil:
		return fmt.Errorf("%s: %w", name, vault.ErrAlreadyExists)
	case cond.Revision == 0:
		return nil
	case v == nil:
		return fmt.Errorf("%s: %w", name, vault.ErrNotFound)
	}
	var cur struct {
		Revision int64 `json:"revision"`
	}
	if err := decode([]byte(name), v, &cur); err != nil {
		return err
	}
	if cur.Revision != cond.Revision {
		return fmt.Errorf("%s: %w", name, vault.ErrEtagMismatch)
	}
	return nil
}

// GetCaller implements vault.Store.
func (s *Store) GetCaller(_ context.Context, name string) (*vault.Caller, error) {
	var c vault.Caller
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketCallers), name, &c)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// cloneCaller is a copy that shares nothing with c (records returned are
// the caller's own).
func cloneCaller(c *vault.Caller) *vault.Caller {
	cp := *c
	cp.Roles = slices.Clone(c.Roles)
	cp.TokenHash = slices.Clone(c.TokenHash)
	return &cp
}

// CallerByTokenHash implements vault.Store. Every authenticated call makes
// it, so it uses the decoded cache, keyed by the hash.
func (s *Store) CallerByTokenHash(_ context.Context, hash []byte) (*vault.Caller, error) {
	if c, ok := s.callers.lookup(string(hash)); ok {
		return c, nil
	}
	gen := s.callers.generation()
	c := new(vault.Caller)
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketTokenIndex).Get(hash)
		if name == nil {
			return fmt.Errorf("token: %w", vault.ErrNotFound)
		}
		err := getJSON(tx.Bucket(bucketCallers), string(name), c)
		if errors.Is(err, vault.ErrNotFound) {
			return fmt.Errorf("token: %w", vault.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.callers.fill(string(hash), c, gen), nil
}

// CallerByMTLSIdentity implements vault.Store.
func (s *Store) CallerByMTLSIdentity(_ context.Context, id string) (*vault.Caller, error) {
	var c vault.Caller
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketMTLSIndex).Get([]byte(id))
		if name == nil {
			return fmt.Errorf("mTLS identity: %w", vault.ErrNotFound)
		}
		return getJSON(tx.Bucket(bucketCallers), string(name), &c)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// PutCaller implements vault.Store. It keeps the token index in step: the
// old token's entry goes in the same transaction, so a rotated token stops
// working the moment the rotation is acknowledged.
func (s *Store) PutCaller(_ context.Context, c *vault.Caller, cond vault.Condition, ev *auditlog.Event) error {
	val, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", c.Name, err)
	}
	// The cache is keyed by token hash: a rotated token must stop working
	// at once, so a caller write drops every entry (callers change rarely).
	defer s.callers.invalidate()
	return s.write(func(tx *bolt.Tx) error {
		b, idx, mtls := tx.Bucket(bucketCallers), tx.Bucket(bucketTokenIndex), tx.Bucket(bucketMTLSIndex)
		old := b.Get([]byte(c.Name))
		switch {
		case cond.MustNotExist && old != nil:
			return fmt.Errorf("%s: %w", c.Name, vault.ErrAlreadyExists)
		case cond.Revision != 0 && old == nil:
			return fmt.Errorf("%s: %w", c.Name, vault.ErrNotFound)
		}
		if old != nil {
			var prev vault.Caller
			if err := decode([]byte(c.Name), old, &prev); err != nil {
				return err
			}
			if cond.Revision != 0 && prev.Revision != cond.Revision {
				return fmt.Errorf("%s: %w", c.Name, vault.ErrEtagMismatch)
			}
			if err := idx.Delete(prev.TokenHash); err != nil {
				return err
			}
			if prev.MTLSIdentity != "" {
				if err := mtls.Delete([]byte(prev.MTLSIdentity)); err != nil {
					return err
				}
			}
		}
		if c.MTLSIdentity != "" {
			if owner := mtls.Get([]byte(c.MTLSIdentity)); owner != nil && string(owner) != c.Name {
				return fmt.Errorf("mTLS identity of %s is %s's: %w", c.Name, owner, vault.ErrAlreadyExists)
			}
			if err := mtls.Put([]byte(c.MTLSIdentity), []byte(c.Name)); err != nil {
				return err
			}
		}
		if owner := idx.Get(c.TokenHash); owner != nil && !bytes.Equal(owner, []byte(c.Name)) {
			return fmt.Errorf("token hash collision for %s", c.Name)
		}
		if err := idx.Put(c.TokenHash, []byte(c.Name)); err != nil {
			return err
		}
		if err := b.Put([]byte(c.Name), val); err != nil {
			return err
		}
		return s.appendAudit(tx, ev)
	})
}

// Meta implements vault.Store.
func (s *Store) Meta(_ context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			out = bytes.Clone(v) // bbolt values die with the transaction
		}
		return nil
	})
	return out, err
}

// PutMeta implements vault.Store.
func (s *Store) PutMeta(_ context.Context, key string, value []byte) error {
	return s.update(func(tx *bolt.Tx) error {
		if value == nil {
			return tx.Bucket(bucketMeta).Delete([]byte(key))
		}
		return tx.Bucket(bucketMeta).Put([]byte(key), value)
	})
}

// InitMeta implements vault.Store.
func (s *Store) InitMeta(_ context.Context, key string, value []byte) ([]byte, error) {
	var out []byte
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if v := b.Get([]byte(key)); v != nil {
			out = bytes.Clone(v)
			return nil
		}
		out = bytes.Clone(value)
		return b.Put([]byte(key), value)
	})
	return out, err
}

func getJSON(b *bolt.Bucket, name string, into any) error {
	v := b.Get([]byte(name))
	if v == nil {
		return fmt.Errorf("%s: %w", name, vault.ErrNotFound)
	}
	return decode([]byte(name), v, into)
}

// decode unmarshals a stored record. json.Unmarshal copies what it keeps, so
// nothing refers to bbolt's memory after the transaction.
func decode(key, val []byte, into any) error {
	if err := json.Unmarshal(val, into); err != nil {
		// The JSON error could quote stored bytes; keep it out of the message.
		return fmt.Errorf("record %q: %w", key, vault.ErrCorrupt)
	}
	return nil
}

// ListCallers implements vault.Store.
func (s *Store) ListCallers(_ context.Context, after string, limit int) ([]*vault.Caller, error) {
	return list[vault.Caller](s.db, bucketCallers, after, limit)
}

// DeleteCaller implements vault.Store.
func (s *Store) DeleteCaller(_ context.Context, name string, ev *auditlog.Event) error {
	defer s.callers.invalidate()
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCallers)
		var c vault.Caller
		if err := getJSON(b, name, &c); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTokenIndex).Delete(c.TokenHash); err != nil {
			return err
		}
		if c.MTLSIdentity != "" {
			if err := tx.Bucket(bucketMTLSIndex).Delete([]byte(c.MTLSIdentity)); err != nil {
				return err
			}
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return s.appendAudit(tx, ev)
	})
}

// PutSession implements vault.Store.
func (s *Store) PutSession(_ context.Context, a *vault.AuthSession, ev *auditlog.Event) error {
	val, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding session: %w", err)
	}
	return s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSessions).Put([]byte(a.ID), val); err != nil {
			return err
		}
		return s.appendAudit(tx, ev)
	})
}

// TakeSession implements vault.Store.
func (s *Store) TakeSession(_ context.Context, id string, ev *auditlog.Event) (*vault.AuthSession, error) {
	var a vault.AuthSession
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if err := getJSON(b, id, &a); err != nil {
			return err
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		return s.appendAudit(tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// PutCredentialsBulk implements vault.BulkStore.
func (s *Store) PutCredentialsBulk(_ context.Context, cs []*vault.Credential, ev *auditlog.Event) error {
	vals := make([][]byte, len(cs))
	for i, c := range cs {
		v, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", c.Name, err)
		}
		vals[i] = v
	}
	defer s.credentials.invalidate()
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCredentials)
		b.FillPercent = 0.9 // names arrive mostly in order
		for i, c := range cs {
			if b.Get([]byte(c.Name)) != nil {
				return fmt.Errorf("%s: %w", c.Name, vault.ErrAlreadyExists)
			}
			if err := b.Put([]byte(c.Name), vals[i]); err != nil {
				return err
			}
			if err := markPendingRefresh(tx, c.Name, c.Secret.RefreshPending); err != nil {
				return err
			}
		}
		return s.appendAudit(tx, ev)
	})
}

// Backup writes a consistent snapshot of the whole database to w from one
// read transaction, while writers go on (bbolt Tx.WriteTo).
func (s *Store) Backup(_ context.Context, w io.Writer) (int64, error) {
	if err := s.fold(); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// CheckFile opens a database file read-only, runs bbolt's consistency
// check and verifies the audit chain: what a restore checks before it
// copies a backup into place.
func CheckFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	var v auditlog.Verifier
	err = db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			return fmt.Errorf("%s is inconsistent: %w", path, cerr)
		}
		for _, b := range [][]byte{bucketCredentials, bucketCallers, bucketAudit, bucketMeta} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s is not a credvault database (no %s bucket)", path, b)
			}
		}
		return VerifyTx(tx, &v)
	})
	if err != nil {
		return err
	}
	if ok, _, bad := v.Result(); !ok {
		return fmt.Errorf("%s: the audit chain breaks at event %d", path, bad)
	}
	return nil
}
