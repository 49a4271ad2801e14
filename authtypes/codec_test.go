package authtypes

import (
	"reflect"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, s := range []Secret{
		apiKey("k"),
		{Bearer: &BearerSecret{Token: ""}},
		{Basic: &BasicSecret{Username: "u", Password: "p\x01\xff"}},
		{Generic: &GenericSecret{Value: string(make([]byte, 300))}},
		{OAuth2: &OAuth2Secret{ClientSecret: "cs", AccessToken: "at", RefreshToken: "rt", Expiry: time.Unix(1800000000, 5).UTC(),
			PreviousRefreshToken: "rt0", RotatedAt: time.Unix(1700000000, 0).UTC()}},
		{OAuth2: &OAuth2Secret{}},
	} {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Secret
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("round trip of %v: %+v, %v", s.Type(), got, err)
		}
		for n := range b {
			var x Secret
			if x.UnmarshalBinary(b[:n]) == nil {
				t.Errorf("%v truncated to %d bytes decodes", s.Type(), n)
			}
		}
	}
	if _, err := (Secret{}).MarshalBinary(); err == nil {
		t.Error("an empty secret encodes")
	}
	if b, _ := (Secret{OAuth2: &OAuth2Secret{SignInToken: "never-stored"}}).MarshalBinary(); string(b) != string([]byte{codecV1, byte(TypeOAuth2), 6, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("the sign-in token is encoded: %x", b)
	}
}

func FuzzSecretDecode(f *testing.F) {
	b, _ := Secret{Basic: &BasicSecret{Username: "u", Password: "p"}}.MarshalBinary()
	f.Add(b)
	f.Add([]byte{codecV1, 5, 6, 0, 0, 0, 1, '1', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Secret
		if s.UnmarshalBinary(b) != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded secret does not encode: %v", err)
		}
		var s2 Secret
		if err := s2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoding changed the secret")
		}
	})
}
