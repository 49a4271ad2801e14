package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func chain(n int) []*Event {
	var out []*Event
	var prev *Event
	for i := range n {
		e := &Event{Time: time.Unix(1700000000+int64(i), 0), Caller: "callers/admin", Method: "/m", Outcome: OutcomeSuccess,
			Details: map[string]string{"b": "2", "a": "1"}}
		Link(prev, e)
		out = append(out, e)
		prev = e
	}
	return out
}

func verify(events []*Event) (bool, int64, int64) {
	var v Verifier
	for _, e := range events {
		if v.Check(e) != nil {
			break
		}
	}
	return v.Result()
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]*Event) []*Event
		ok     bool
		badSeq int64
	}{
		{"intact", func(es []*Event) []*Event { return es }, true, 0},
		{"changed caller", func(es []*Event) []*Event { es[2].Caller = "callers/mallory"; return es }, false, 3},
		{"changed detail", func(es []*Event) []*Event { es[3].Details["a"] = "x"; return es }, false, 4},
		{"changed code", func(es []*Event) []*Event { es[0].Code = 7; return es }, false, 1},
		{"removed event", func(es []*Event) []*Event { return append(es[:2], es[3:]...) }, false, 3},
		{"swapped events", func(es []*Event) []*Event { es[1], es[2] = es[2], es[1]; return es }, false, 2},
		{"rehashed but unlinked", func(es []*Event) []*Event {
			es[2].Caller = "callers/mallory"
			es[2].Hash = es[2].ComputeHash()
			return es
		}, false, 4},
	}
	for _, tc := range tests {
		ok, checked, bad := verify(tc.tamper(chain(5)))
		if ok != tc.ok || bad != tc.badSeq {
			t.Errorf("%s: verify = ok %v, first bad %d (checked %d); want ok %v, first bad %d", tc.name, ok, bad, checked, tc.ok, tc.badSeq)
		}
	}
}

func TestCanonicalIgnoresMapOrderAndRoundTrips(t *testing.T) {
	es := chain(2)
	b, err := Marshal(es[1])
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.ComputeHash()) != string(es[1].Hash) {
		t.Error("a stored and reloaded event no longer verifies")
	}
	if _, err := Unmarshal([]byte("{not json")); err == nil {
		t.Error("Unmarshal of garbage succeeded")
	}
}

// Events stored as JSON before the binary form keep verifying, in a chain
// that goes on in the binary form.
func TestLegacyJSONEventsVerifyInAMixedChain(t *testing.T) {
	es := chain(4)
	var v Verifier
	for i, e := range es {
		var stored []byte
		var err error
		if i < 2 {
			stored, err = json.Marshal(e)
		} else {
			stored, err = Marshal(e)
		}
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(stored)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if err := v.Check(back); err != nil {
			t.Fatalf("event %d (stored as %q...): %v", i, stored[:1], err)
		}
	}
}

// Any single changed byte of a stored event is caught: it either does not
// decode or does not verify.
func TestEveryStoredByteIsCovered(t *testing.T) {
	es := chain(2)
	stored, err := Marshal(es[1])
	if err != nil {
		t.Fatal(err)
	}
	for i := range stored {
		b := bytes.Clone(stored)
		b[i] ^= 0x01
		e, err := Unmarshal(b)
		if err != nil {
			continue
		}
		v := Verifier{prev: es[0]}
		if v.Check(e) == nil {
			t.Errorf("flipping byte %d of %d went unnoticed", i, len(stored))
		}
	}
	for _, bad := range [][]byte{nil, {formatVersion}, stored[:len(stored)-1], append(bytes.Clone(stored), 0)} {
		if _, err := Unmarshal(bad); err == nil {
			t.Errorf("Unmarshal(%d bytes, truncated or extended) succeeded", len(bad))
		}
	}
}

// FuzzDecode: a stored event that does not decode is an error, never a
// panic, and whatever decodes can be checked.
func FuzzDecode(f *testing.F) {
	b, _ := Marshal(chain(1)[0])
	f.Add(b)
	f.Add([]byte(`{"sequence":1,"details":{"a":"b"},"hash":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		var v Verifier
		_ = v.Check(e)
		_ = e.Canonical()
	})
}

// BenchmarkLinkAndMarshal is the per-event work of an audit append: link
// (canonical encoding and SHA-256) and the stored form.
// AppendLinked is Link then Marshal, in one encoding.
func TestAppendLinkedIsLinkThenMarshal(t *testing.T) {
	for _, prev := range []*Event{nil, chain(3)[2]} {
		mk := func() *Event {
			return &Event{Time: time.Unix(1700000000, 5).In(time.FixedZone("x", 3600)), Caller: "callers/app", Method: "/m",
				Outcome: OutcomeDenied, Code: 7, RequestID: "r", Details: map[string]string{"b": "2", "a": "1"}}
		}
		a, b := mk(), mk()
		Link(prev, a)
		want, err := Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got := AppendLinked([]byte("head"), prev, b)
		if string(got) != "head"+string(want) {
			t.Fatalf("AppendLinked after %v:\n got %x\nwant %x", prev != nil, got[4:], want)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("the events differ after linking:\n%+v\n%+v", a, b)
		}
	}
}

func BenchmarkAppendLinked(b *testing.B) {
	prev := chain(1)[0]
	e := &Event{Time: time.Unix(1700000000, 0), Caller: "callers/app", Method: "/credvault.v1.ResolverService/ResolveCredential",
		Resource: "credentials/apikey", Outcome: OutcomeSuccess, RequestID: "0123456789abcdef"}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendLinked(buf[:0], prev, e)
	}
}

func BenchmarkLinkAndMarshal(b *testing.B) {
	prev := chain(1)[0]
	e := &Event{Time: time.Unix(1700000000, 0), Caller: "callers/app", Method: "/credvault.v1.ResolverService/ResolveCredential",
		Resource: "credentials/apikey", Outcome: OutcomeSuccess, RequestID: "0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		Link(prev, e)
		if _, err := Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

// The canonical encoding is sized up front with room for the hash, so
// building a stored form allocates its buffer once.
func TestCanonicalLeavesRoomForTheHash(t *testing.T) {
	for _, e := range []*Event{
		{},
		{Caller: "callers/app", Method: "/credvault.v1.ResolverService/ResolveCredential", Resource: "credentials/c",
			Outcome: OutcomeSuccess, RequestID: "0123456789abcdef", PrevHash: make([]byte, sha256.Size)},
		{Caller: "c", Details: map[string]string{"count": "3", "reason": "x"}},
	} {
		b := e.appendCanonical(nil)
		if cap(b) < len(b)+sha256.Size {
			t.Errorf("canonical encoding of %+v: cap %d, want at least %d (its length and a hash)", e, cap(b), len(b)+sha256.Size)
		}
	}
}
