package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// These tests stop a store the way a crash does: without the fold and the
// journal's removal that Close does, leaving the database and the journal
// as the last acknowledged call left them.

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crash closes s's files without folding. Background folds finish first:
// a fold in flight is a bbolt transaction, all or nothing either way.
func crash(t *testing.T, s *Store) {
	t.Helper()
	s.folds.Wait()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s.journal.close()
	s.reserve.close()
}

// restart crashes s and opens its database again.
func restart(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	crash(t, s)
	return openTestStore(t, path)
}

func event(id string) *auditlog.Event {
	return &auditlog.Event{Time: time.Unix(1700000000, 0), Caller: "callers/app",
		Method: "/credvault.v1.ResolverService/ResolveCredential", Resource: "credentials/x",
		Outcome: auditlog.OutcomeSuccess, RequestID: id}
}

func batch(prefix string, n int) []*auditlog.Event {
	out := make([]*auditlog.Event, n)
	for i := range out {
		out[i] = event(fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// auditIDs lists the request ids in the store's audit log, in order, and
// checks the chain.
func auditIDs(t *testing.T, s *Store) []string {
	t.Helper()
	ok, checked, bad, err := s.VerifyAudit(context.Background())
	if err != nil || !ok {
		t.Fatalf("audit chain: ok=%v bad=%d err=%v", ok, bad, err)
	}
	events, _, err := s.ListAudit(context.Background(), 0, 1<<30, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(events)) != checked {
		t.Fatalf("listed %d events, verified %d", len(events), checked)
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.RequestID
	}
	return ids
}

// wantLog fails the test unless the log lists exactly the request ids in
// want (space-separated), in order, and verifies.
func wantLog(t *testing.T, s *Store, want, when string) {
	t.Helper()
	if got := strings.Join(auditIDs(t, s), " "); got != want {
		t.Fatalf("%s: the log holds %q, want %q", when, got, want)
	}
}

// foldHeldBeforeItsHandler folds the journal in a transaction that has
// committed but whose commit handlers wait (one is registered ahead of the
// fold's own), standing for a fold whose handler has not run yet or whose
// sync is still in flight. release lets it finish and waits for it.
func foldHeldBeforeItsHandler(t *testing.T, s *Store) (release func()) {
	t.Helper()
	committed, held, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.db.Update(func(tx *bolt.Tx) error {
			tx.OnCommit(func() { close(committed); <-held })
			return s.appendAudit(tx)
		})
	}()
	<-committed
	return func() {
		close(held)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func mustAppend(t *testing.T, s *Store, events []*auditlog.Event) {
	t.Helper()
	if err := s.AppendAudit(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func TestJournalEventsSurviveACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	mustAppend(t, s, batch("a", 3))
	mustAppend(t, s, batch("b", 2))
	if n := s.journal.pendingCount(); n != 5 {
		t.Fatalf("%d events pending in the journal, want 5 (did they go to the bucket?)", n)
	}
	crash(t, s)

	// The offline verifier counts the journal's events too.
	got, err := VerifyFile(path, time.Second)
	if err != nil || got != (FileVerification{OK: true, Checked: 5, Journaled: 5}) {
		t.Fatalf("VerifyFile after the crash: %+v %v, want 5 events, all in the journal", got, err)
	}
	s = openTestStore(t, path)
	wantLog(t, s, "a-0 a-1 a-2 b-0 b-1", "after the crash")
	// The chain goes on after the replayed events.
	mustAppend(t, s, batch("c", 1))
	if got := auditIDs(t, s); len(got) != 6 || got[5] != "c-0" {
		t.Fatalf("after one more event: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + JournalSuffix); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after a clean close: %v", err)
	}
	got, err = VerifyFile(path, time.Second)
	if err != nil || got != (FileVerification{OK: true, Checked: 6}) {
		t.Fatalf("VerifyFile after a clean close: %+v %v, want 6 events, none in the journal", got, err)
	}
}

// Writes link their events after the journal's: a write folds the pending
// events first, in its own transaction. Writes and group commits racing
// each other, through several rounds of both halves of the journal and the
// background folds, leave one chain holding every acknowledged event once.
func TestJournalInterleavesWithWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				id := fmt.Sprintf("w%d-%d", w, i)
				var err error
				if w == 0 && i%4 == 0 { // a write with its event
					err = s.PutSession(ctx, &vault.AuthSession{ID: id, Credential: "credentials/x", ExpireTime: time.Now().Add(time.Hour)}, event(id))
				} else {
					err = s.AppendAudit(ctx, []*auditlog.Event{event(id)})
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	// Big batches push the journal through its halves meanwhile.
	for i := range 40 {
		ids := batch(fmt.Sprintf("big%d", i), 100)
		mustAppend(t, s, ids)
		mu.Lock()
		for _, e := range ids {
			acked = append(acked, e.RequestID)
		}
		mu.Unlock()
	}
	wg.Wait()
	s = restart(t, s, path)
	defer s.Close()
	got := auditIDs(t, s)
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged event %s appears %d times in the log of %d events", id, seen[id], len(got))
		}
	}
	if len(got) != len(acked) {
		t.Errorf("the log holds %d events, %d were acknowledged", len(got), len(acked))
	}
}

// A crash can leave the last record half-written. Replay keeps every event
// before it and nothing from it on, whatever the damage.
func TestJournalTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(rec []byte)
	}{
		{"flipped byte in the event", func(rec []byte) { rec[10] ^= 0x40 }},
		{"flipped byte in the hash", func(rec []byte) { rec[len(rec)-1] ^= 1 }},
		{"length past the end", func(rec []byte) { rec[0], rec[1] = 0xff, 0xff }},
		{"zeroed tail", func(rec []byte) { clear(rec[len(rec)/2:]) }},
		{"zeroed record", func(rec []byte) { clear(rec) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			s := openTestStore(t, path)
			mustAppend(t, s, batch("a", 4))
			start := s.journal.off
			mustAppend(t, s, batch("b", 1))
			end := s.journal.off
			crash(t, s)

			f, err := os.OpenFile(path+JournalSuffix, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			rec := make([]byte, end-start)
			if _, err := f.ReadAt(rec, start); err != nil {
				t.Fatal(err)
			}
			tc.damage(rec)
			if _, err := f.WriteAt(rec, start); err != nil {
				t.Fatal(err)
			}
			f.Close()

			s = openTestStore(t, path)
			defer s.Close()
			wantLog(t, s, "a-0 a-1 a-2 a-3", "after a torn last record")
		})
	}
}

// Events that were folded and a round of the journal that started over
// them stay where they are in the file; replay takes only what continues
// the bucket's chain.
func TestJournalReplaySkipsFoldedEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	mustAppend(t, s, batch("a", 5))
	if _, _, err := s.ListAudit(context.Background(), 0, 1, 1, nil); err != nil { // folds
		t.Fatal(err)
	}
	mustAppend(t, s, batch("b", 2))
	s = restart(t, s, path)
	wantLog(t, s, "a-0 a-1 a-2 a-3 a-4 b-0 b-1", "after the crash")
	s = restart(t, s, path) // the reopen formatted the journal: nothing left to replay
	defer s.Close()
	wantLog(t, s, "a-0 a-1 a-2 a-3 a-4 b-0 b-1", "after a second open")
}

// A journal belongs to one database. Next to another (a copied file, a
// restore), it may still hold events its own database acknowledged: the
// other database refuses to open rather than overwrite it, and the offline
// verifier leaves it out.
func TestJournalOfAnotherDatabaseIsRefused(t *testing.T) {
	pathA := filepath.Join(t.TempDir(), FileName)
	a := openTestStore(t, pathA)
	mustAppend(t, a, batch("a", 3))
	crash(t, a)

	pathB := filepath.Join(t.TempDir(), FileName)
	b := openTestStore(t, pathB)
	b.Close()
	data, err := os.ReadFile(pathA + JournalSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pathB+JournalSuffix, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := VerifyFile(pathB, time.Second); err != nil || got != (FileVerification{OK: true}) {
		t.Fatalf("VerifyFile of B with A's journal: %+v %v", got, err)
	}
	if b, err := Open(pathB, time.Second); err == nil || !strings.Contains(err.Error(), "another database") {
		if b != nil {
			b.Close()
		}
		t.Fatalf("B opened beside A's journal: %v", err)
	}
	if got, _ := os.ReadFile(pathB + JournalSuffix); string(got) != string(data) {
		t.Error("A's journal was changed")
	}
}

// A fold drops what it folded only after bbolt has released its writer
// lock. A write committing in between links its event after the folded
// ones; a group commit after it must link after the write's event, not
// after the last event still listed as pending, or two events would share
// a sequence.
func TestJournalHeadAfterAFoldAndAWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	ctx := context.Background()
	mustAppend(t, s, batch("a", 3))
	release := foldHeldBeforeItsHandler(t, s)
	if err := s.PutSession(ctx, &vault.AuthSession{ID: "x", Credential: "credentials/x", ExpireTime: time.Now().Add(time.Hour)}, event("w")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, batch("g", 2))
	release()
	wantLog(t, s, "a-0 a-1 a-2 w g-0 g-1", "before a crash")
	s = restart(t, s, path)
	defer s.Close()
	wantLog(t, s, "a-0 a-1 a-2 w g-0 g-1", "after a crash")
}

// Close removes the journal before it releases the database's file lock:
// a process waiting for that lock must find its own journal, not lose it
// to the closing one. (bbolt polls a held lock every 50 ms, so this test
// rarely lands in the gap a wrong order would leave; it checks the round
// trip, and the order is kept by Close's structure.)
func TestJournalCloseThenOpenRightAway(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	for i := range 20 {
		s := openTestStore(t, path)
		mustAppend(t, s, batch(fmt.Sprintf("r%d", i), 2))
		next := make(chan *Store)
		go func() {
			n, err := Open(path, 5*time.Second) // waits for the file lock
			if err != nil {
				t.Error(err)
			}
			next <- n
		}()
		time.Sleep(time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		n := <-next
		if n == nil {
			return
		}
		mustAppend(t, n, batch(fmt.Sprintf("n%d", i), 1))
		if _, err := os.Stat(path + JournalSuffix); err != nil {
			t.Fatalf("round %d: the journal of the store just opened is gone: %v", i, err)
		}
		crash(t, n)
	}
	s := openTestStore(t, path)
	defer s.Close()
	if got := auditIDs(t, s); len(got) != 60 {
		t.Fatalf("the log holds %d events, want 60: %v", len(got), got)
	}
}

// Empty batches and nil events change nothing, as in every other store.
func TestJournalEmptyAndNilEvents(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	mustAppend(t, s, nil)
	mustAppend(t, s, []*auditlog.Event{nil})
	mustAppend(t, s, []*auditlog.Event{nil, event("a"), nil})
	wantLog(t, s, "a", "after empty batches")
}

// When the journal cannot be written, events are committed to the bucket
// instead: the calls go on, the chain stays whole.
func TestJournalFailureFallsBackToTheBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	defer s.Close()
	mustAppend(t, s, batch("a", 2))
	if err := s.AuditJournalFailure(); err != nil {
		t.Fatalf("AuditJournalFailure before any failure: %v", err)
	}
	s.journal.file.Close() // every later write to it fails
	mustAppend(t, s, batch("b", 2))
	if s.AuditJournalFailure() == nil {
		t.Error("AuditJournalFailure is nil after the journal failed")
	}
	mustAppend(t, s, batch("c", 1))
	if n := s.journal.pendingCount(); n != 0 {
		t.Errorf("%d events pending after the journal failed, want 0", n)
	}
	wantLog(t, s, "a-0 a-1 b-0 b-1 c-0", "after the journal failed")
}

// An event too long for a journal record goes to the bucket, in order.
func TestJournalLongEventGoesToTheBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	mustAppend(t, s, batch("a", 2))
	long := event("long")
	long.Details = map[string]string{"note": strings.Repeat("x", maxJournalRecord)}
	mustAppend(t, s, []*auditlog.Event{long})
	mustAppend(t, s, batch("b", 1))
	s = restart(t, s, path)
	defer s.Close()
	wantLog(t, s, "a-0 a-1 long b-0", "after a long event")
}

// Random batch sizes and crashes, over many rounds of both halves: the log
// always holds exactly the acknowledged events, in order.
func TestJournalRandomRounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	rng := rand.New(rand.NewPCG(1, 2))
	var acked []string
	s := openTestStore(t, path)
	for round := range 12 {
		for i := range rng.IntN(600) {
			events := batch(fmt.Sprintf("r%d-%d", round, i), 1+rng.IntN(40))
			mustAppend(t, s, events)
			for _, e := range events {
				acked = append(acked, e.RequestID)
			}
		}
		s = restart(t, s, path)
	}
	defer s.Close()
	if got, want := strings.Join(auditIDs(t, s), " "), strings.Join(acked, " "); got != want {
		t.Fatalf("the log differs from the acknowledged events: %d vs %d events", len(strings.Fields(got)), len(acked))
	}
	if fi, err := os.Stat(path + JournalSuffix); err != nil || fi.Size() != journalSize {
		t.Errorf("journal file: %v %v, want %d bytes", fi, err, journalSize)
	}
}

// After the journal has gone round its halves, the newest events sit at
// the start of one half and older, unfolded ones in the other: replay goes
// by sequence, not by place in the file.
func TestJournalReplayAcrossHalves(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	s.journal.mu.Lock()
	s.journal.folding = true // no background folds: the test folds by hand
	s.journal.mu.Unlock()
	var acked []string
	switches := 0
	for i := 0; switches < 2 || i%5 != 0; i++ {
		before := s.journal.active
		events := batch(fmt.Sprintf("e%d", i), 10)
		mustAppend(t, s, events)
		for _, e := range events {
			acked = append(acked, e.RequestID)
		}
		if s.journal.active != before {
			switches++
			if switches == 1 {
				if err := s.fold(); err != nil { // the first half, and one batch of the second
					t.Fatal(err)
				}
			}
		}
	}
	if s.journal.active != 0 || s.journal.pendingCount() == 0 {
		t.Fatalf("active half %d, %d pending: the test did not set up both halves", s.journal.active, s.journal.pendingCount())
	}
	s = restart(t, s, path)
	defer s.Close()
	if got, want := strings.Join(auditIDs(t, s), " "), strings.Join(acked, " "); got != want {
		t.Fatalf("the log differs from the acknowledged events: %d vs %d events", len(strings.Fields(got)), len(acked))
	}
}

// FuzzReadJournal feeds arbitrary bytes to the journal reader as the
// contents of its two halves: it never panics, every event it returns is
// decoded exactly (its stored form is in the file), they come in sequence
// order whichever half holds them, and what replay would take from them is
// a chain.
func FuzzReadJournal(f *testing.F) {
	records := func(from, n int) []byte {
		var prev *auditlog.Event
		var out []byte
		for i := range from + n {
			e := event(fmt.Sprintf("seed-%d", i))
			rec := appendRecord(nil, prev, e)
			if i >= from {
				out = append(out, rec...)
			}
			prev = e
		}
		return out
	}
	f.Add(records(0, 3), []byte{})
	f.Add(records(3, 2), records(0, 3)) // the newest in the first half
	f.Add(records(0, 3)[:50], records(0, 1))
	f.Add([]byte{0, 0, 0, 0}, []byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, half0, half1 []byte) {
		half0, half1 = half0[:min(len(half0), int(halfSize))], half1[:min(len(half1), int(halfSize))]
		data := make([]byte, journalSize)
		copy(data[halfStart(0):], half0)
		copy(data[halfStart(1):], half1)
		got, _ := readJournal(data, data[:journalHeader])
		for i, r := range got {
			e := r.event
			rec, err := auditlog.Marshal(e)
			if err != nil || !bytes.Equal(rec, r.stored) || !(bytes.Contains(data[halfStart(0):halfStart(1)], rec) || bytes.Contains(data[halfStart(1):], rec)) {
				t.Fatalf("event %d does not re-encode to its stored bytes in the journal: %v", e.Sequence, err)
			}
			if i > 0 && got[i-1].event.Sequence > e.Sequence {
				t.Fatalf("events out of sequence order: %d before %d", got[i-1].event.Sequence, e.Sequence)
			}
		}
		var v auditlog.Verifier
		for _, r := range chainTail(nil, got) {
			if err := v.Check(r.event); err != nil {
				t.Fatalf("replay would take event %d, which does not continue the chain: %v", r.event.Sequence, err)
			}
		}
	})
}

// A reader sees a fold's commit before its disk sync has finished. Until
// the fold is durable, the half holding its events must not be written
// over, or a power loss would lose them from both places: a group commit
// that does not fit in the other half then goes to the bucket instead
// (whose own sync makes the fold durable too). The held commit handler
// stands for the sync in flight: the journal sees the same state either
// way. Should the half be reused, the test simulates the power loss.
func TestJournalHalfNotReusedBeforeItsFoldIsDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	s.journal.mu.Lock()
	s.journal.folding = true // no background folds: the test folds by hand
	s.journal.mu.Unlock()
	acked, i := 0, 0
	add := func() {
		mustAppend(t, s, batch(fmt.Sprint("b", i), 100))
		acked += 100
		i++
	}
	for s.journal.active == 0 {
		add()
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	release := foldHeldBeforeItsHandler(t, s)
	for s.journal.active == 1 && s.journal.lastSeq[1] == int64(acked) {
		add() // until a batch does not go to half 1
	}
	reused := s.journal.active == 0
	crash(t, s)
	release()
	if !reused {
		return
	}
	t.Errorf("half 0 was written over while the fold of its events was not yet durable")
	if err := os.WriteFile(path, before, 0o600); err != nil { // power lost before the fold's sync
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	defer s.Close()
	if n := len(auditIDs(t, s)); n != acked {
		t.Fatalf("the log holds %d events after the power loss; %d were acknowledged", n, acked)
	}
}

// A fold that has committed but not yet dropped what it folded (its commit
// handler runs after bbolt releases its lock) does not keep a clean Close
// from removing the journal.
func TestJournalCloseAfterAFoldAwaitingItsHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	mustAppend(t, s, batch("a", 3))
	release := foldHeldBeforeItsHandler(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	release()
	if _, err := os.Stat(path + JournalSuffix); !os.IsNotExist(err) {
		t.Fatalf("the journal is still there after a clean close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	s = openTestStore(t, path)
	defer s.Close()
	wantLog(t, s, "a-0 a-1 a-2", "after reopening")
}

// fillHalfZeroThenPast appends single-event batches of events with a note of noteLen bytes
// until the journal has switched to half 1 and holds `past` more events
// there (after the switch's background fold finished). It returns where
// B's records end in half 0 and how many events half 0 holds.
func fillHalfZeroThenPast(t *testing.T, s *Store, noteLen, past int) (end, countB int64, acked int) {
	next := func() {
		e := event(fmt.Sprintf("b-%05d", acked))
		e.Details = map[string]string{"note": strings.Repeat("x", noteLen)}
		mustAppend(t, s, []*auditlog.Event{e})
		acked++
	}
	for s.journal.active == 0 {
		end = s.journal.off
		next()
	}
	countB = s.journal.lastSeq[0]
	s.folds.Wait()
	for s.journal.lastSeq[1] < countB+int64(past) {
		next()
	}
	return end, countB, acked
}

// A crash during run A's big group commit (written from half 0's start)
// leaves of that batch only the page(s) from offset E on: the tail of a
// chain whose head never reached the disk; replay ignores it. Run B writes
// half 0 up to E exactly (records of another size), goes on in half 1, and
// crashes in turn. A's record at E carries a sequence B used in half 1 and
// sorts before B's: had it survived B's open (which formats the journal)
// and stopped replay (which skips records that do not link), B's
// acknowledged events from there on would be lost. (Found by review.)
func TestJournalStaleRecordsOfAnEarlierRun(t *testing.T) {
	const past = 100
	// Dry runs of B, deterministic, to find a size leaving room at the end
	// of half 0 for two of A's small records.
	noteLen := 300
	var E, countB int64
	for ; ; noteLen++ {
		dry := openTestStore(t, filepath.Join(t.TempDir(), FileName))
		E, countB, _ = fillHalfZeroThenPast(t, dry, noteLen, past)
		dry.Close()
		if halfStart(1)-E >= 2*250 {
			break
		}
	}
	sX := countB + 50 // A's record at E

	// A's batch: events 1..sX+1; those before sX padded so that record sX
	// starts at E, those from sX on small.
	build := func(pad, extra int) ([]byte, []int64) {
		var prev *auditlog.Event
		var buf []byte
		var offs []int64
		for i := int64(1); i <= sX+1; i++ {
			e := event("a")
			if i < sX {
				e.RequestID = strings.Repeat("a", pad)
			}
			if i == 1 {
				e.RequestID += strings.Repeat("a", extra)
			}
			offs = append(offs, halfStart(0)+int64(len(buf)))
			buf = appendRecord(buf, prev, e)
			prev = e
		}
		return buf, offs
	}
	pad := 1
	for {
		if _, offs := build(pad+1, 0); offs[sX-1] > E {
			break
		}
		pad++
	}
	_, offs := build(pad, 0)
	batchA, offs := build(pad, int(E-offs[sX-1]))
	if offs[sX-1] != E || int64(len(batchA))+halfStart(0) > halfStart(1) {
		t.Fatalf("A's record %d at %d, want %d; A ends at %d", sX, offs[sX-1], E, int64(len(batchA))+halfStart(0))
	}

	path := filepath.Join(t.TempDir(), FileName)
	a := openTestStore(t, path)
	crash(t, a) // A acknowledged nothing; its last batch was cut short
	f, err := os.OpenFile(path+JournalSuffix, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(batchA[E-halfStart(0):], E); err != nil { // only the pages from E on reached the disk
		t.Fatal(err)
	}
	f.Close()

	b := openTestStore(t, path)
	if n := len(auditIDs(t, b)); n != 0 {
		t.Fatalf("%d events replayed from A's torn batch", n)
	}
	E2, countB2, acked := fillHalfZeroThenPast(t, b, noteLen, past)
	if E2 != E || countB2 != countB {
		t.Fatalf("run B differs from its dry run: %d/%d vs %d/%d", E2, countB2, E, countB)
	}
	crash(t, b)

	c := openTestStore(t, path)
	defer c.Close()
	if n := len(auditIDs(t, c)); n != acked {
		t.Fatalf("the log holds %d events after the crash; %d were acknowledged", n, acked)
	}
}

// chainTail takes the records that continue the chain and skips the rest,
// wherever they sort: a record of the next sequence that does not link (a
// leftover of another round) does not hide the one that does.
func TestChainTailSkipsWhatDoesNotLink(t *testing.T) {
	chainOf := func(prefix string, n int, prev *auditlog.Event) []*auditlog.Event {
		out := make([]*auditlog.Event, n)
		for i := range out {
			out[i] = event(fmt.Sprintf("%s%d", prefix, i))
			auditlog.Link(prev, out[i])
			prev = out[i]
		}
		return out
	}
	base := chainOf("base", 2, nil)
	good := chainOf("good", 3, base[1])
	other := chainOf("other", 2, nil)      // sequences 1 and 2 of an unrelated chain
	stale := chainOf("stale", 3, other[1]) // good's sequences, from another round
	ids := func(rs []pendingEvent) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.event.RequestID)
		}
		return strings.Join(out, " ")
	}
	records := func(es ...*auditlog.Event) []pendingEvent {
		out := make([]pendingEvent, len(es))
		for i, e := range es {
			out[i].event = e
		}
		return out
	}
	tampered := *good[1]
	tampered.Resource = "credentials/other"
	for _, tc := range []struct {
		name    string
		last    *auditlog.Event
		records []*auditlog.Event
		want    string
	}{
		{"a clean tail", base[1], good, "good0 good1 good2"},
		{"older records first", base[1], append(slices.Clone(base), good...), "good0 good1 good2"},
		{"a stale record sorting first", base[1], []*auditlog.Event{stale[0], good[0], good[1], good[2]}, "good0 good1 good2"},
		{"stale records interleaved", base[1], []*auditlog.Event{good[0], stale[1], good[1], stale[2], good[2]}, "good0 good1 good2"},
		{"a gap ends the chain", base[1], []*auditlog.Event{good[0], good[2]}, "good0"},
		{"a changed record ends the chain", base[1], []*auditlog.Event{good[0], &tampered, good[2]}, "good0"},
		{"another chain from an empty bucket", nil, other, "other0 other1"},
		{"records of another chain after a head", base[1], other, ""},
	} {
		if got := ids(chainTail(tc.last, records(tc.records...))); got != tc.want {
			t.Errorf("%s: took %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A group commit larger than a half goes to the bucket without touching
// the journal: the half being appended to stays the active one, its room
// kept for the next group commit.
func TestJournalBatchLargerThanAHalfGoesToTheBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTestStore(t, path)
	defer s.Close()
	mustAppend(t, s, batch("a", 2))
	active, off := s.journal.active, s.journal.off
	big := batch("big", int(halfSize/200)+1) // a record is over 200 bytes
	mustAppend(t, s, big)
	if s.journal.active != active || s.journal.off != off {
		t.Errorf("journal at half %d offset %d after an oversize batch, want half %d offset %d", s.journal.active, s.journal.off, active, off)
	}
	mustAppend(t, s, batch("b", 1))
	if got := auditIDs(t, s); len(got) != 2+len(big)+1 || got[len(got)-1] != "b-0" {
		t.Errorf("the log holds %d events ending %q, want %d ending b-0", len(got), got[len(got)-1], 2+len(big)+1)
	}
}
