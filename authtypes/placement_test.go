package authtypes

import (
	"strings"
	"testing"
	"time"
)

func apiKey(k string) Secret { return Secret{APIKey: &APIKeySecret{Key: k}} }

func TestExpandDefaults(t *testing.T) {
	tests := []struct {
		typ    Type
		secret Secret
		want   Parameter
	}{
		{TypeAPIKey, apiKey("k-1"), Parameter{LocationHeader, "X-API-Key", "k-1"}},
		{TypeBearer, Secret{Bearer: &BearerSecret{Token: "t"}}, Parameter{LocationHeader, "Authorization", "Bearer t"}},
		{TypeBasic, Secret{Basic: &BasicSecret{Username: "Aladdin", Password: "open sesame"}}, Parameter{LocationHeader, "Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}},
		{TypeOAuth2, Secret{OAuth2: &OAuth2Secret{AccessToken: "at"}}, Parameter{LocationHeader, "Authorization", "Bearer at"}},
	}
	for _, tc := range tests {
		got, err := Expand("credential", Definition{Type: tc.typ}, tc.secret)
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("Expand(%v default) = %v, %v; want [%v]", tc.typ, got, err, tc.want)
		}
	}
	if got := EffectivePlacement(Definition{Type: TypeSecret}); got != nil {
		t.Errorf("EffectivePlacement(secret) = %v, want none", got)
	}
}

func TestExpandTemplates(t *testing.T) {
	def := Definition{Type: TypeBasic, Placement: []ParameterTemplate{
		{LocationQuery, "user", "{username}"},
		{LocationBody, "auth", "u={username};p={password}"},
		{LocationPath, "tenant", "static"},
	}}
	got, err := Expand("credential", def, Secret{Basic: &BasicSecret{Username: "u1", Password: "p{1}"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"u1", "u=u1;p=p{1}", "static"}
	for i, p := range got {
		if p.Value != want[i] {
			t.Errorf("Expand: parameter %d = %q, want %q (values are not re-expanded)", i, p.Value, want[i])
		}
	}
}

func TestValidateDefinition(t *testing.T) {
	long := strings.Repeat("x", MaxTemplateLen+1)
	many := make([]ParameterTemplate, MaxPlacements+1)
	for i := range many {
		many[i] = ParameterTemplate{LocationHeader, "X-K", "{api_key}"}
	}
	okOAuth := &OAuth2Config{GrantType: GrantClientCredentials, TokenURL: "https://idp.example/token", ClientID: "c"}
	tests := []struct {
		name  string
		def   Definition
		field string // "" = valid
	}{
		{"api key default", Definition{Type: TypeAPIKey}, ""},
		{"unknown type", Definition{Type: 42}, "credential.type"},
		{"unspecified type", Definition{}, "credential.type"},
		{"secret without placement", Definition{Type: TypeSecret}, "credential.placement"},
		{"invalid header token", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationHeader, "X Api", "{api_key}"}}}, "credential.placement[0].name"},
		{"CRLF in name", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationQuery, "a\r\nb", "{api_key}"}}}, "credential.placement[0].name"},
		{"CR in template", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationHeader, "X-K", "a\r{api_key}"}}}, "credential.placement[0].value_template"},
		{"NUL in template", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationHeader, "X-K", "a\x00"}}}, "credential.placement[0].value_template"},
		{"unknown placeholder", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationHeader, "X-K", "{nope}"}}}, "credential.placement[0].value_template"},
		{"other type's placeholder", Definition{Type: TypeBearer, Placement: []ParameterTemplate{{LocationHeader, "X-K", "{password}"}}}, "credential.placement[0].value_template"},
		{"unbalanced open", Definition{Type: TypeBearer, Placement: []ParameterTemplate{{LocationHeader, "X-K", "{token"}}}, "credential.placement[0].value_template"},
		{"unbalanced close", Definition{Type: TypeBearer, Placement: []ParameterTemplate{{LocationHeader, "X-K", "token}"}}}, "credential.placement[0].value_template"},
		{"oversize template", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationHeader, "X-K", long}}}, "credential.placement[0].value_template"},
		{"too many placements", Definition{Type: TypeAPIKey, Placement: many}, "credential.placement"},
		{"unknown location", Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{9, "k", "{api_key}"}}}, "credential.placement[0].location"},
		{"oauth2 valid", Definition{Type: TypeOAuth2, OAuth2: okOAuth}, ""},
		{"oauth2 missing config", Definition{Type: TypeOAuth2}, "credential.oauth2"},
		{"oauth2 http to a public host", Definition{Type: TypeOAuth2, OAuth2: &OAuth2Config{GrantType: GrantClientCredentials, TokenURL: "http://idp.example/token", ClientID: "c"}}, "credential.oauth2.token_url"},
		{"oauth2 http to loopback", Definition{Type: TypeOAuth2, OAuth2: &OAuth2Config{GrantType: GrantClientCredentials, TokenURL: "http://127.0.0.1:9/token", ClientID: "c"}}, ""},
		{"oauth2 code without auth url", Definition{Type: TypeOAuth2, OAuth2: &OAuth2Config{GrantType: GrantAuthorizationCode, TokenURL: "https://i/t", ClientID: "c"}}, "credential.oauth2.auth_url"},
		{"oauth2 reserved extra param", Definition{Type: TypeOAuth2, OAuth2: &OAuth2Config{GrantType: GrantClientCredentials, TokenURL: "https://i/t", ClientID: "c", ExtraParams: map[string]string{"client_secret": "x"}}}, "credential.oauth2.extra_params"},
		{"oauth2 scope with space", Definition{Type: TypeOAuth2, OAuth2: &OAuth2Config{GrantType: GrantClientCredentials, TokenURL: "https://i/t", ClientID: "c", Scopes: []string{"a b"}}}, "credential.oauth2.scopes[0]"},
		{"oauth2 config on api key", Definition{Type: TypeAPIKey, OAuth2: okOAuth}, "credential.oauth2"},
	}
	for _, tc := range tests {
		vs := ValidateDefinition("credential", tc.def)
		if tc.field == "" {
			if len(vs) != 0 {
				t.Errorf("ValidateDefinition(%s) = %v, want valid", tc.name, vs)
			}
			continue
		}
		found := false
		for _, v := range vs {
			found = found || v.Field == tc.field
		}
		if !found {
			t.Errorf("ValidateDefinition(%s) = %v, want a violation on %s", tc.name, vs, tc.field)
		}
	}
}

func TestExpandRefusesInjection(t *testing.T) {
	for _, bad := range []string{"k\r\nX-Evil: 1", "k\n", "k\r", "k\x00", "k\x7f"} {
		_, err := Expand("credential", Definition{Type: TypeAPIKey}, apiKey(bad))
		if err == nil {
			t.Errorf("Expand(api key %q into a header) succeeded", bad)
		}
	}
	// CR/LF are refused in every location, not just headers.
	for _, loc := range []Location{LocationQuery, LocationBody, LocationPath} {
		def := Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{loc, "k", "{api_key}"}}}
		if _, err := Expand("credential", def, apiKey("a\nb")); err == nil {
			t.Errorf("Expand(LF into %v) succeeded", loc)
		}
	}
}

// TestCanaryNeverInErrors plants a canary in every secret and triggers every
// validation failure it can: the canary must not appear in any error.
func TestCanaryNeverInErrors(t *testing.T) {
	const c = "CANARY-7d1f"
	secrets := map[Type]Secret{
		TypeAPIKey: apiKey(c + "\r\n"),
		TypeBearer: {Bearer: &BearerSecret{Token: c + "\x00"}},
		TypeBasic:  {Basic: &BasicSecret{Username: c + ":", Password: c + "\n" + strings.Repeat("x", MaxSecretValueLen)}},
		TypeSecret: {Generic: &GenericSecret{Value: c + "\r"}},
		TypeOAuth2: {OAuth2: &OAuth2Secret{AccessToken: c + "\n", ClientSecret: c + "\x00"}},
	}
	for typ, s := range secrets {
		ph := kinds[typ].placeholders()[0]
		if typ == TypeBasic {
			ph = "password" // where the LF is
		}
		def := Definition{Type: typ, Placement: []ParameterTemplate{{LocationHeader, "X-K", "{" + ph + "}"}}}
		if typ == TypeOAuth2 {
			def.OAuth2 = &OAuth2Config{GrantType: GrantClientCredentials, TokenURL: "https://i/t", ClientID: "c"}
		}
		var texts []string
		for _, v := range ValidateSecret("secret", typ, s) {
			texts = append(texts, v.Field, v.Description)
		}
		for _, other := range []Type{TypeAPIKey, TypeBasic} {
			for _, v := range ValidateSecret("secret", other, s) {
				texts = append(texts, v.Field, v.Description)
			}
		}
		if _, err := Expand("credential", def, s); err != nil {
			texts = append(texts, err.Error())
		} else {
			t.Errorf("Expand(%v with CR/LF/NUL canary) succeeded", typ)
		}
		for _, text := range texts {
			if strings.Contains(text, c) {
				t.Errorf("%v: the canary appears in %q", typ, text)
			}
		}
	}
}

func TestStateToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1800000000, 0)
	tok := SignState(key, StateClaims{Audience: "https://vault.example", Subject: "s1", Credential: "credentials/a", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	if c, err := VerifyState(key, tok, "https://vault.example", now); err != nil || c.Subject != "s1" || c.Credential != "credentials/a" {
		t.Fatalf("VerifyState = %+v, %v", c, err)
	}
	if c, ok := PeekState(tok); !ok || c.Audience != "https://vault.example" {
		t.Errorf("PeekState = %+v, %v", c, ok)
	}
	bad := map[string]func() (StateClaims, error){
		"other audience": func() (StateClaims, error) { return VerifyState(key, tok, "https://other.example", now) },
		"expired":        func() (StateClaims, error) { return VerifyState(key, tok, "https://vault.example", now.Add(time.Hour)) },
		"other key": func() (StateClaims, error) {
			return VerifyState([]byte("another key of 32 bytes, exactly"), tok, "https://vault.example", now)
		},
		"tampered": func() (StateClaims, error) {
			return VerifyState(key, tok[:len(tok)-2]+"AA", "https://vault.example", now)
		},
		"alg none": func() (StateClaims, error) {
			parts := strings.Split(tok, ".")
			return VerifyState(key, "eyJhbGciOiJub25lIn0."+parts[1]+".", "https://vault.example", now)
		},
		"garbage": func() (StateClaims, error) { return VerifyState(key, "a.b.c", "https://vault.example", now) },
	}
	for name, f := range bad {
		if _, err := f(); err == nil {
			t.Errorf("VerifyState(%s) succeeded", name)
		}
	}
}

func BenchmarkExpand(b *testing.B) {
	def := Definition{Type: TypeAPIKey, Placement: []ParameterTemplate{{LocationQuery, "appid", "{api_key}"}}}
	s := apiKey("k-1234567890")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Expand("credential", def, s); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzExpand(f *testing.F) {
	f.Add("Bearer {token}", "tok")
	f.Add("{token}{token}", "a\r\nb")
	f.Add("{", "x")
	f.Add("}{token", "\x00")
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		def := Definition{Type: TypeBearer, Placement: []ParameterTemplate{{LocationHeader, "Authorization", tmpl}}}
		if len(ValidateDefinition("credential", def)) > 0 {
			return
		}
		ps, err := Expand("credential", def, Secret{Bearer: &BearerSecret{Token: value}})
		if err != nil {
			return
		}
		for _, p := range ps {
			if strings.ContainsAny(p.Value, "\r\n\x00") {
				t.Errorf("Expand produced %q", p.Value)
			}
		}
	})
}

// FuzzState: the state parsers never panic, and only a state signed with
// the key, for the audience, verifies.
func FuzzState(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add(SignState(key, StateClaims{Audience: "https://v", Subject: "s", Expiry: 1 << 40}))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		PeekState(s)
		c, err := VerifyState(key, s, "https://v", time.Unix(0, 0))
		if err == nil && SignState(key, c) == "" {
			t.Fatal("verified a state that does not re-sign")
		}
	})
}

// FuzzJWTExpiry: reading an unverified exp never panics.
func FuzzJWTExpiry(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.sig")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) { JWTExpiry(s) })
}

func TestExpandTemplate(t *testing.T) {
	value := func(name string) (string, bool) {
		v, ok := map[string]string{"a": "1", "b": "22"}[name]
		return v, ok
	}
	tests := []struct {
		template, want string
		ok             bool
	}{
		{"plain", "plain", true},
		{"{a}", "1", true},
		{"{b}", "22", true},
		{"x{a}y{b}z", "x1y22z", true},
		{"{a}{b}", "122", true},
		{"Bearer {b}", "Bearer 22", true},
		{"{c}", "", false},
		{"{}", "", false},
		{"{a", "", false},
		{"{a{b}", "", false},
		{"{a}}", "1}", true},
		{"}{a}", "}1", true},
	}
	for _, tc := range tests {
		got, ok := expandTemplate(tc.template, value)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("expandTemplate(%q) = %q, %v; want %q, %v", tc.template, got, ok, tc.want, tc.ok)
		}
	}
}
