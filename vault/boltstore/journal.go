package boltstore

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// The audit journal makes a group of audit events durable with one disk
// sync. A bbolt commit costs two (its pages, then its meta page), and
// nearly every call's event (resolves, reads, denials) commits with nothing
// else to write: on this project's VM each sync costs about 50 µs of CPU
// whatever is written, and the second one also doubles the time callers
// wait.
//
// The journal is a file next to the database, written in full (zeros) each
// time the store opens, once the events it held are folded, so that
// appending to it changes no file metadata, a disk sync flushes data blocks
// only, and nothing of an earlier run is left in it. A group commit appends its events
// (linked onto the chain: each carries its sequence, the previous event's
// hash and its own) and syncs once. The events stay in memory as pending
// until they are folded into the audit bucket. One chain in one order:
//
//   - the store's chain lock orders group commits against writes: a write
//     holds it shared from before its transaction to after its commit, a
//     group commit holds it exclusively. So a group commit never runs while
//     a write links events, and the chain's head is the later of the last
//     pending event and the bucket's last event;
//   - a write that records audit events folds the pending events into
//     the bucket, then links its own after them, in its one transaction;
//     once it has committed (and synced), the folded events are dropped
//     from memory;
//   - folding alone changes no sequence, so it needs no chain lock: the
//     file has two halves, and when the one being appended to is full,
//     appends go on in the other while a background transaction folds the
//     pending events. A half is written again only once all its events are
//     durably in the bucket (only commit handlers, which run after the
//     sync, drop pending events). A group commit that finds neither half
//     free (or an event too long for a record, a batch larger than a half,
//     or a failed journal) commits to the bucket itself, with everything
//     pending before it: two disk syncs, as before the journal.
//
// On open, events in the journal that continue the bucket's chain are
// folded into it; everything else in the file (events already folded,
// leftovers of an earlier round, a torn last record, zeros) is ignored.
// The chain itself tells them apart: a replayed event must decode, hash
// to its stored hash, and carry the next sequence and the previous hash.
// A header ties the journal to its database, so a journal left next to
// another database is never replayed into it.

// JournalSuffix names the journal: the database's path plus this suffix.
const JournalSuffix = ".audit-journal"

const (
	journalMagic = "credvault-audit-journal-v1\n\x00\x00\x00\x00\x00" // 32 bytes
	// journalHeader is the magic followed by the database's journal id.
	journalHeader = len(journalMagic) + journalIDSize
	journalIDSize = 16
	// journalSize bounds the file. A half holds about 2,100 events of a
	// resolve's size (250-byte records); a background fold commits what
	// is pending when it starts, about that many.
	journalSize = 1 << 20
	halfSize    = int64(journalSize-journalHeader) / 2
	// maxJournalRecord bounds one record; a longer event is folded.
	maxJournalRecord = 64 << 10
)

// metaJournalID names the meta key holding the id the journal's header
// must carry.
var metaJournalID = []byte("audit_journal_id")

type journal struct {
	mu      sync.Mutex // guards everything below
	file    *os.File
	path    string
	header  []byte
	active  int            // the half appended to
	off     int64          // where the next record goes, in the active half
	lastSeq [2]int64       // the last sequence written to each half
	pending []pendingEvent // durable in the journal, not yet in the bucket, in chain order
	folding bool           // a background fold is running
	buf     []byte         // scratch: the records of an append
	ends    []int          // scratch: where each record of an append ends
	// failed is why the journal is no longer used (a failed append, or
	// errJournalClosed), nil while it is. Atomic, not under mu: a metrics
	// scrape must not wait while an append waits on a hung disk.
	failed atomic.Pointer[error]
}

// pendingEvent is an event durable in the journal, with its stored form
// (the journal record's payload), which a fold puts in the bucket as is.
type pendingEvent struct {
	event  *auditlog.Event
	stored []byte
}

// halfStart is the offset of half h's first record.
func halfStart(h int) int64 { return int64(journalHeader) + int64(h)*halfSize }

// journalIDOf returns the database's journal id, creating it in tx.
func journalIDOf(tx *bolt.Tx) ([]byte, error) {
	meta := tx.Bucket(bucketMeta)
	if id := meta.Get(metaJournalID); len(id) == journalIDSize {
		return bytes.Clone(id), nil
	}
	id := make([]byte, journalIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return id, meta.Put(metaJournalID, id)
}

func journalHeaderFor(id []byte) []byte {
	return append([]byte(journalMagic), id...)
}

// openJournal opens (or creates) the journal at path for the database with
// id, and returns the events it holds: every well-formed record, in
// sequence order, for replayJournal to choose from; once they are folded,
// the caller formats the journal. The journal of another database is
// refused, never overwritten; a file that is not a whole journal (none, or
// one cut short while it was first written) holds no events.
func openJournal(path string, id []byte) (*journal, []pendingEvent, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the audit journal: %w", err)
	}
	j := &journal{file: f, path: path, header: journalHeaderFor(id), off: halfStart(0)}
	data, err := io.ReadAll(io.LimitReader(f, journalSize))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading the audit journal: %w", err)
	}
	if records, ours := readJournal(data, j.header); ours {
		return j, records, nil
	}
	if bytes.HasPrefix(data, []byte(journalMagic)) && !bytes.HasPrefix(data, j.header) {
		f.Close()
		return nil, nil, fmt.Errorf("%s is the audit journal of another database, and may hold audit events that database acknowledged but has not folded in: move it away together with that database (opening that database once folds them), or delete it if that database is gone", path)
	}
	return j, nil, nil
}

// format writes the header and zeros over the whole journal, syncs it,
// and syncs the directory so the file itself survives a crash. Open does
// it once the journal's events are folded: no record of an earlier run
// stays behind to be mistaken for one of this run (a torn batch whose
// first page never reached the disk hides the rest of it from replay, and
// a later run writing the same sequences elsewhere would otherwise have
// to be told apart from it).
func (j *journal) format() error {
	data := make([]byte, journalSize)
	copy(data, j.header)
	if _, err := j.file.WriteAt(data, 0); err != nil {
		return fmt.Errorf("writing the audit journal: %w", err)
	}
	if err := j.file.Sync(); err != nil {
		return fmt.Errorf("syncing the audit journal: %w", err)
	}
	return syncDir(filepath.Dir(j.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// readJournal returns the events of both halves of a journal's contents,
// by sequence, if data is a whole journal with header (of its database).
func readJournal(data, header []byte) (records []pendingEvent, ours bool) {
	if len(data) != journalSize || !bytes.HasPrefix(data, header) {
		return nil, false
	}
	out := readJournalRecords(data[halfStart(0):halfStart(1)])
	out = append(out, readJournalRecords(data[halfStart(1):])...)
	slices.SortStableFunc(out, func(a, b pendingEvent) int { return cmp.Compare(a.event.Sequence, b.event.Sequence) })
	return out, true
}

// readJournalRecords decodes records (see appendRecord) until the first
// that is empty, overlong or does not decode. Each keeps its stored form
// (a slice of data): decoding took only the canonical form, so it is what
// a fold would write.
func readJournalRecords(data []byte) []pendingEvent {
	var out []pendingEvent
	for len(data) >= 4 {
		n := binary.BigEndian.Uint32(data)
		if n == 0 || n > maxJournalRecord || int(n) > len(data)-4 {
			break
		}
		e, err := auditlog.Unmarshal(data[4 : 4+n])
		if err != nil || data[4] == '{' { // the journal holds the binary form only
			break
		}
		out = append(out, pendingEvent{event: e, stored: data[4 : 4+n : 4+n]})
		data = data[4+n:]
	}
	return out
}

// chainTail returns the records that continue the chain after last (nil:
// an empty chain), in order, skipping every record that does not link
// after the last one taken: those at or before its sequence, and those of
// the next sequence with another previous hash (leftovers of another
// round). Linking takes the next sequence and the previous hash, so
// nothing skipped can open a gap or a fork; the chain ends where no record
// links.
func chainTail(last *auditlog.Event, records []pendingEvent) []pendingEvent {
	var out []pendingEvent
	for _, r := range records {
		if !links(last, r.event) {
			continue
		}
		out = append(out, r)
		last = r.event
	}
	return out
}

// links reports whether e is the event right after prev.
func links(prev, e *auditlog.Event) bool {
	var v auditlog.Verifier
	if prev != nil {
		v.Resume(prev)
	}
	return v.Check(e) == nil
}

// appendRecord appends e, linked after prev, as a journal record: a
// 4-byte big-endian length, then the event's stored form.
func appendRecord(b []byte, prev, e *auditlog.Event) []byte {
	start := len(b)
	b = auditlog.AppendLinked(append(b, 0, 0, 0, 0), prev, e)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// append makes events durable in the journal, linked after the chain's
// head, and reports whether it did; the caller holds the chain lock
// exclusively. When it did not, the caller commits the events to the
// bucket instead: with a nil error, they did not fit, or the journal was
// already stopped (failed or closed); with an error, the
// journal could not be read or written (after a failed write or sync it is
// not used again). foldNow asks the caller to start a background fold.
func (j *journal) append(db *bolt.DB, events []*auditlog.Event) (ok, foldNow bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed.Load() != nil {
		return false, false, nil
	}
	prev, err := j.head(db)
	if err != nil {
		return false, false, err
	}
	buf, ends := j.buf[:0], j.ends[:0]
	for _, e := range events {
		start := len(buf)
		buf = appendRecord(buf, prev, e)
		if len(buf)-start-4 > maxJournalRecord {
			return false, false, nil
		}
		ends = append(ends, len(buf))
		prev = e
	}
	j.buf, j.ends = buf, ends
	if int64(len(buf)) > halfSize {
		return false, false, nil
	}
	if j.off+int64(len(buf)) > halfStart(j.active)+halfSize {
		other := 1 - j.active
		if len(j.pending) > 0 && j.pending[0].event.Sequence <= j.lastSeq[other] {
			return false, false, nil // the other half is not folded yet
		}
		j.active, j.off = other, halfStart(other)
		foldNow = len(j.pending) > 0 && !j.folding
		j.folding = j.folding || foldNow
	}
	if _, err := j.file.WriteAt(buf, j.off); err != nil {
		return false, foldNow, j.fail(fmt.Errorf("appending to the audit journal: %w", err))
	}
	if err := fdatasync(j.file); err != nil {
		return false, foldNow, j.fail(fmt.Errorf("syncing the audit journal: %w", err))
	}
	j.off += int64(len(buf))
	j.lastSeq[j.active] = prev.Sequence
	// The pending events keep their stored forms, in one copy of exactly
	// what was written (the scratch buffer is reused by the next append).
	buf = bytes.Clone(buf)
	start := 0
	for i, e := range events {
		j.pending = append(j.pending, pendingEvent{event: e, stored: buf[start+4 : ends[i] : ends[i]]})
		start = ends[i]
	}
	return true, foldNow, nil
}

// head returns the chain's last event: the later of the last pending event
// and the bucket's last. The bucket's can be the later one: a fold, which
// runs without the chain lock, drops what it folded only after bbolt has
// released its writer lock, and a write can commit events in between,
// after events still listed as pending. head does not drop those pending
// events itself: a reader can see a commit before its disk sync has
// finished, and a half must not be written over until the fold holding its
// events is durable (only the fold's commit handler, run after the sync,
// drops them). The write, by contrast, is durable here: it held the chain
// lock, which the caller holds now, until after its sync. j.mu keeps
// pending events from being dropped meanwhile; a fold still in flight
// changes neither head.
func (j *journal) head(db *bolt.DB) (*auditlog.Event, error) {
	var head *auditlog.Event
	if n := len(j.pending); n > 0 {
		head = j.pending[n-1].event
	}
	err := db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketAudit).Cursor().Last()
		if k == nil || (head != nil && head.Sequence >= int64(binary.BigEndian.Uint64(k))) {
			return nil
		}
		last, err := decodeAudit(k, v)
		head = last
		return err
	})
	return head, err
}

// fail stops the journal for good and returns err.
func (j *journal) fail(err error) error {
	j.failed.Store(&err)
	return err
}

// foldDone records that the background fold finished.
func (j *journal) foldDone() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.folding = false
}

// pendingAfter returns the pending events after sequence seq, and whether
// any pending events are at or before it (committed by an earlier fold
// whose commit handler has not run yet).
func (j *journal) pendingAfter(seq int64) (after []pendingEvent, before bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	i := j.countThrough(seq)
	return j.pending[i:len(j.pending):len(j.pending)], i > 0
}

// folded drops the pending events up to sequence seq, which a committed
// transaction has stored in the bucket.
func (j *journal) folded(seq int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if i := j.countThrough(seq); i == len(j.pending) {
		j.pending = nil
	} else {
		j.pending = j.pending[i:]
	}
}

// countThrough counts the pending events up to sequence seq (they come
// first: pending is in chain order). j.mu must be held.
func (j *journal) countThrough(seq int64) int {
	i := 0
	for i < len(j.pending) && j.pending[i].event.Sequence <= seq {
		i++
	}
	return i
}

func (j *journal) pendingCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

var errJournalClosed = errors.New("the audit journal is closed")

// AuditJournalFailure returns the error that stopped the audit journal, or
// nil while it works. After a failure audit events still become durable,
// each group commit as a bbolt commit of its own (two disk syncs): slower,
// not unsafe, and worth an operator's look at the disk.
func (s *Store) AuditJournalFailure() error {
	if p := s.journal.failed.Load(); p != nil && *p != errJournalClosed {
		return *p
	}
	return nil
}

// close closes the file; later appends go to the bucket (and fail there,
// the database being closed too).
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fail(errJournalClosed)
	return j.file.Close()
}

// remove deletes the closed journal, once the database holds all of it.
func (j *journal) remove() error {
	if err := os.Remove(j.path); err != nil {
		return fmt.Errorf("removing the folded audit journal: %w", err)
	}
	return syncDir(filepath.Dir(j.path))
}

// lastAudit returns the last event in the bucket, nil when it is empty.
func lastAudit(tx *bolt.Tx) (*auditlog.Event, error) {
	k, v := tx.Bucket(bucketAudit).Cursor().Last()
	if k == nil {
		return nil, nil
	}
	return decodeAudit(k, v)
}

// decodeAudit decodes the audit bucket's entry k, v; the error names the
// sequence, never the stored bytes.
func decodeAudit(k, v []byte) (*auditlog.Event, error) {
	e, err := auditlog.Unmarshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit event %d: %w", binary.BigEndian.Uint64(k), vault.ErrCorrupt)
	}
	return e, nil
}

// readJournalFile returns the records of the journal of the database whose
// transaction is tx, for offline readers; none when there is no journal or
// it belongs to another database.
func readJournalFile(tx *bolt.Tx, path string) ([]pendingEvent, error) {
	id := tx.Bucket(bucketMeta).Get(metaJournalID)
	if len(id) != journalIDSize {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit journal: %w", err)
	}
	records, _ := readJournal(data, journalHeaderFor(id))
	return records, nil
}
