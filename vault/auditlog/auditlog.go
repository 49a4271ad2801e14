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
func (e *Event) Canonical() []byte { return e.appendCanonical(nil) }

func (e *Event) appendCanonical(b []byte) []byte {
	// The version byte, ten 8-byte numbers (sequence, time, code, the
	// details count and six lengths), the strings, and room for the hash a
	// stored form appends.
	n := 1 + 10*8 + len(e.Caller) + len(e.Method) + len(e.Resource) + len(e.Outcome) + len(e.RequestID) + len(e.PrevHash) + sha256.Size
	for k, v := range e.Details {
		n += 16 + len(k) + len(v)
	}
	b = slices.Grow(b, n)
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Sequence))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = appendString(b, e.Caller)
	b = appendString(b, e.Method)
	b = appendString(b, e.Resource)
	b = appendString(b, string(e.Outcome))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(e.Code)))
	b = appendString(b, e.RequestID)
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint64(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, e.Details[k])
	}
	return appendString(b, string(e.PrevHash))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// ComputeHash returns SHA-256 of the canonical encoding.
func (e *Event) ComputeHash() []byte {
	h := sha256.Sum256(e.Canonical())
	return h[:]
}

// Link makes e the event after prev (nil for the first event): it sets
// Sequence, PrevHash and Hash.
func Link(prev *Event, e *Event) { AppendLinked(nil, prev, e) }

// AppendLinked links e after prev, as Link does, and appends its stored
// form, as Marshal returns it, to b: the one encoding serves both the hash
// and the stored bytes (every event stored is encoded once).
func AppendLinked(b []byte, prev, e *Event) []byte {
	e.Sequence, e.PrevHash = 1, nil
	if prev != nil {
		e.Sequence = prev.Sequence + 1
		e.PrevHash = slices.Clone(prev.Hash)
	}
	e.Time = e.Time.UTC().Round(0)
	start := len(b)
	b = e.appendCanonical(b)
	h := sha256.Sum256(b[start:])
	e.Hash = slices.Clone(h[:])
	return append(b, h[:]...)
}

// Marshal is the stored form of an event: its canonical encoding followed
// by its hash. Storing exactly the bytes the hash covers makes an append
// one encoding and no JSON, and a reader needs no second encoder.
func Marshal(e *Event) ([]byte, error) {
	if len(e.Hash) != sha256.Size {
		return nil, errors.New("audit event is not linked")
	}
	return append(e.appendCanonical(nil), e.Hash...), nil
}

// errDecode is every decoding failure: a stored event is either whole or
// reported as broken, never half-read.
var errDecode = errors.New("audit event does not decode")

// Unmarshal decodes a stored event: the binary form of Marshal, or the
// JSON form events were stored in before it (an object starts with '{',
// the binary form with formatVersion).
func Unmarshal(b []byte) (*Event, error) {
	if len(b) > 0 && b[0] == '{' {
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, errDecode
		}
		return &e, nil
	}
	if len(b) < 1+sha256.Size || b[0] != formatVersion {
		return nil, errDecode
	}
	d := decoder{b: b[1 : len(b)-sha256.Size]}
	e := &Event{Sequence: int64(d.uint64())}
	e.Time = time.Unix(0, int64(d.uint64())).UTC()
	e.Caller, e.Method, e.Resource = d.string(), d.string(), d.string()
	e.Outcome = Outcome(d.string())
	e.Code = int32(int64(d.uint64()))
	e.RequestID = d.string()
	if n := d.uint64(); n > 0 {
		if n > uint64(len(d.b))/16 { // each pair takes at least two lengths
			return nil, errDecode
		}
		e.Details = make(map[string]string, n)
		for range n {
			k := d.string()
			e.Details[k] = d.string()
		}
	}
	if prev := d.string(); prev != "" {
		e.PrevHash = []byte(prev)
	}
	body := b[:len(b)-sha256.Size]
	// Only the canonical form decodes: a variant that maps to the same
	// fields (a code's high bytes, details out of order) is not an event.
	if d.bad || len(d.b) != 0 || !bytes.Equal(e.appendCanonical(nil), body) {
		return nil, errDecode
	}
	e.Hash = slices.Clone(b[len(body):])
	return e, nil
}

// decoder reads the canonical encoding; past the first short read it
// returns zero values and sets bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.bad, d.b = true, nil
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) string() string {
	n := d.uint64()
	if n > uint64(len(d.b)) {
		d.bad, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
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

// Resume makes v check the events after e, which the caller has verified
// already (the last event of the part of a chain checked before).
func (v *Verifier) Resume(e *Event) { v.prev = e }

// Result is the outcome of a verification.
func (v *Verifier) Result() (ok bool, checked, firstBad int64) {
	return v.bad == 0, v.checked, v.bad
}
