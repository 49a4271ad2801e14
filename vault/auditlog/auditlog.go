// Package auditlog is the tamper-evident audit trail's pure part: the event,
// its canonical encoding, the hash chain and its verification. Storage is
// elsewhere; this package does no I/O.
//
// Each event's Hash is SHA-256 over the canonical encoding of the event,
// which includes PrevHash, the Hash of the event before it. Changing,
// removing or reordering any stored event breaks the chain at that event.
package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Outcome says how an audited call ended.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeDenied  Outcome = "denied"
	OutcomeFailure Outcome = "failure"
)

// Event is one audited call or vault action. It never holds a secret: its
// fields are names, codes and non-secret details.
type Event struct {
	Sequence  int64             `json:"sequence"`
	Time      time.Time         `json:"time"`
	Caller    string            `json:"caller"`
	Method    string            `json:"method"`
	Resource  string            `json:"resource,omitempty"`
	Outcome   Outcome           `json:"outcome"`
	Code      int32             `json:"code"`
	RequestID string            `json:"request_id,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	PrevHash  []byte            `json:"prev_hash,omitempty"`
	Hash      []byte            `json:"hash"`
}

// formatVersion is the first byte of the canonical encoding; a new encoding
// gets a new number so old events still verify.
const formatVersion = 1

// Canonical returns the encoding the hash covers: every field but Hash, in a
// fixed order, each length-prefixed, details sorted by key. It does not
// depend on JSON or map order.
func (e *Event) Canonical() []byte {
	var b bytes.Buffer
	b.WriteByte(formatVersion)
	putInt := func(v int64) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(v))
		b.Write(n[:])
	}
	putBytes := func(s []byte) {
		putInt(int64(len(s)))
		b.Write(s)
	}
	putString := func(s string) { putBytes([]byte(s)) }
	putInt(e.Sequence)
	putInt(e.Time.UnixNano())
	putString(e.Caller)
	putString(e.Method)
	putString(e.Resource)
	putString(string(e.Outcome))
	putInt(int64(e.Code))
	putString(e.RequestID)
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	putInt(int64(len(keys)))
	for _, k := range keys {
		putString(k)
		putString(e.Details[k])
	}
	putBytes(e.PrevHash)
	return b.Bytes()
}

// ComputeHash returns SHA-256 of the canonical encoding.
func (e *Event) ComputeHash() []byte {
	h := sha256.Sum256(e.Canonical())
	return h[:]
}

// Link makes e the event after prev (nil for the first event): it sets
// Sequence, PrevHash and Hash.
func Link(prev *Event, e *Event) {
	e.Sequence, e.PrevHash = 1, nil
	if prev != nil {
		e.Sequence = prev.Sequence + 1
		e.PrevHash = slices.Clone(prev.Hash)
	}
	e.Time = e.Time.UTC().Round(0)
	e.Hash = e.ComputeHash()
}

// Marshal is the stored form of an event.
func Marshal(e *Event) ([]byte, error) { return json.Marshal(e) }

// Unmarshal decodes a stored event.
func Unmarshal(b []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, errors.New("audit event does not decode")
	}
	return &e, nil
}

// Verifier checks a chain one event at a time, in sequence order, so a log
// of any length verifies in constant memory.
type Verifier struct {
	prev    *Event
	checked int64
	bad     int64
}

// ErrBroken is returned by Check for the first event that does not verify.
var ErrBroken = errors.New("audit chain broken")

// Check verifies e against the events checked before it. After the first
// failure every later call fails too: the chain is only as good as its
// first break.
func (v *Verifier) Check(e *Event) error {
	if v.bad != 0 {
		return fmt.Errorf("%w at sequence %d", ErrBroken, v.bad)
	}
	v.checked++
	wantSeq, wantPrev := int64(1), []byte(nil)
	if v.prev != nil {
		wantSeq, wantPrev = v.prev.Sequence+1, v.prev.Hash
	}
	switch {
	case e.Sequence != wantSeq:
		v.bad = wantSeq // the expected event is missing or out of place
	case !bytes.Equal(e.PrevHash, wantPrev), !bytes.Equal(e.Hash, e.ComputeHash()):
		v.bad = e.Sequence
	}
	if v.bad != 0 {
		return fmt.Errorf("%w at sequence %d", ErrBroken, v.bad)
	}
	v.prev = e
	return nil
}

// Result is the outcome of a verification.
func (v *Verifier) Result() (ok bool, checked, firstBad int64) {
	return v.bad == 0, v.checked, v.bad
}
