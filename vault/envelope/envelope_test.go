package envelope

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

var (
	testKey     = bytes.Repeat([]byte{0x42}, 32)
	testWrapped = []byte("wrapped-data-key")
)

// oneShotSeal and oneShotOpen set a key up for one call; the vault keeps
// its Keys.
func oneShotSeal(dataKey, wrappedKey, plaintext, aad []byte) ([]byte, error) {
	k, err := NewKey(dataKey)
	if err != nil {
		return nil, err
	}
	return k.Seal(wrappedKey, plaintext, aad)
}

func oneShotOpen(dataKey []byte, env Envelope, aad []byte) ([]byte, error) {
	k, err := NewKey(dataKey)
	if err != nil {
		return nil, err
	}
	return k.Open(env, aad)
}

func TestRoundTripAndBinding(t *testing.T) {
	blob, err := oneShotSeal(testKey, testWrapped, []byte(`{"api_key":{"key":"k"}}`), AAD("credentials/a", 1))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Parse(blob)
	if err != nil || !bytes.Equal(env.WrappedKey, testWrapped) {
		t.Fatalf("Parse = %v, %v", env.WrappedKey, err)
	}
	if got, err := oneShotOpen(testKey, env, AAD("credentials/a", 1)); err != nil || string(got) != `{"api_key":{"key":"k"}}` {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for _, aad := range [][]byte{AAD("credentials/b", 1), AAD("credentials/a", 2), AAD("credentials/a\x00", 1), nil} {
		if _, err := oneShotOpen(testKey, env, aad); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Open with AAD %x = %v, want ErrAuthFailed", aad, err)
		}
	}
	// Every flipped byte fails, to parse or to open, and never panics.
	for i := range blob {
		c := bytes.Clone(blob)
		c[i] ^= 0x01
		if env, err := Parse(c); err == nil {
			if _, err := oneShotOpen(testKey, env, AAD("credentials/a", 1)); err == nil && i >= headerLen+len(testWrapped) {
				t.Errorf("flipping byte %d still opens", i)
			}
		}
	}
	for n := range blob {
		if env, err := Parse(blob[:n]); err == nil {
			if _, err := oneShotOpen(testKey, env, AAD("credentials/a", 1)); err == nil {
				t.Errorf("truncation to %d bytes opens", n)
			}
		}
	}
}

func TestParseHostile(t *testing.T) {
	tests := map[string][]byte{
		"empty":           nil,
		"unknown version": {2, 0, 1, 'k'},
		"zero key length": append([]byte{1, 0, 0}, make([]byte, 40)...),
		"huge key length": append([]byte{1, 0xff, 0xff}, make([]byte, 40)...),
		"key past end":    append([]byte{1, 0, 30}, make([]byte, 40)...),
	}
	for name, blob := range tests {
		if _, err := Parse(blob); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%s) = %v, want ErrMalformed", name, err)
		}
	}
}

func TestSealBounds(t *testing.T) {
	if _, err := oneShotSeal(testKey[:16], testWrapped, nil, nil); err == nil {
		t.Error("Seal with a 16-byte key succeeded")
	}
	if _, err := oneShotSeal(testKey, nil, nil, nil); err == nil {
		t.Error("Seal without a wrapped key succeeded")
	}
	if _, err := oneShotSeal(testKey, testWrapped, make([]byte, MaxPlaintextLen+1), nil); err == nil {
		t.Error("Seal of an oversize secret succeeded")
	}
}

// committedVector was sealed once with testKey, testWrapped and a zero nonce
// (seal with a fixed nonce). If the format changes, this breaks: stored
// secrets would no longer open.
const committedVector = "010010777261707065642d646174612d6b657900000000000000000000000097c09a9d2aedf08beda4979f3197805f3d1d2859d7ead6c90d"

func TestDecryptTestVector(t *testing.T) {
	k, err := NewKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := k.seal([]byte("wrapped-data-key"), []byte("credvault"), AAD("credentials/v", 7), make([]byte, nonceLen))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(blob); got != committedVector {
		t.Errorf("format changed: sealing gives\n%s\nwant\n%s", got, committedVector)
	}
	raw, _ := hex.DecodeString(committedVector)
	env, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := oneShotOpen(testKey, env, AAD("credentials/v", 7)); err != nil || string(got) != "credvault" {
		t.Fatalf("Open(test vector) = %q, %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	blob, _ := oneShotSeal(testKey, testWrapped, []byte("seed"), AAD("credentials/a", 1))
	f.Add(blob)
	f.Add([]byte{1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Parse(b)
		if err != nil {
			return
		}
		_, _ = oneShotOpen(testKey, env, AAD("credentials/a", 1))
	})
}
