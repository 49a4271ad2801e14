package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

func canary(kind string) string {
	var b [8]byte
	rand.Read(b[:])
	return "CANARY" + kind + hex.EncodeToString(b[:])
}

// canaryCase is one credential type with its secrets planted as canaries.
type canaryCase struct {
	id        string
	cred      *credvaultv1.Credential
	secret    func(c string) *credvaultv1.CredentialSecret
	canaries  []string // every secret value planted
	resolveOK bool
}

func canaryCases() []*canaryCase {
	header := func(tmpl string) []*credvaultv1.ParameterTemplate {
		return []*credvaultv1.ParameterTemplate{{Location: credvaultv1.Location_LOCATION_HEADER, Name: "X-Secret", ValueTemplate: tmpl}}
	}
	oauthCfg := &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{
		GrantType: credvaultv1.GrantType_GRANT_TYPE_REFRESH_TOKEN, TokenUrl: "https://idp.example/token", ClientId: "client-1"}}
	return []*canaryCase{
		{id: "apikey", cred: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY},
			secret: func(c string) *credvaultv1.CredentialSecret {
				return &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: c}}}
			}},
		{id: "bearer", cred: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_BEARER},
			secret: func(c string) *credvaultv1.CredentialSecret {
				return &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Bearer{Bearer: &credvaultv1.BearerSecret{Token: c}}}
			}},
		{id: "basic", cred: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_BASIC},
			secret: func(c string) *credvaultv1.CredentialSecret {
				return &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Basic{Basic: &credvaultv1.BasicSecret{Username: "svc", Password: c}}}
			}},
		{id: "generic", cred: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_SECRET, Placement: header("{secret}")},
			secret: func(c string) *credvaultv1.CredentialSecret {
				return &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Secret{Secret: &credvaultv1.GenericSecret{Value: c}}}
			}},
		{id: "oauth", cred: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_OAUTH2, Config: oauthCfg},
			secret: func(c string) *credvaultv1.CredentialSecret {
				return &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Oauth2{Oauth2: &credvaultv1.OAuth2Secret{
					ClientSecret: c + "cs", AccessToken: c + "at", RefreshToken: c + "rt"}}}
			}},
	}
}

// TestCanarySecretsNeverLeak plants a unique secret in every credential
// type, drives every RPC including its error paths, and looks for the
// secret in every response but ResolveCredential's, in every error, in the
// logs (debug level, with and without payload logging) and in the bytes of
// the bbolt file and its audit journal.
func TestCanarySecretsNeverLeak(t *testing.T) {
	for _, payloads := range []bool{true, false} {
		t.Run(fmt.Sprintf("payload logging %v", payloads), func(t *testing.T) { testCanaries(t, payloads) })
	}
}

// testCanaries runs the canary test with payload logging on (the
// middleware's interceptor) or off (the server's own call logging).
func testCanaries(t *testing.T, payloads bool) {
	e := newTestEnv(t, func(c *envConfig) { c.LogPayloads = payloads })
	ctx := e.admin()
	var seen []string // everything a client or operator could read
	record := func(m proto.Message, err error) {
		if m != nil {
			b, _ := protojson.Marshal(m)
			seen = append(seen, string(b))
		}
		if err != nil {
			st := status.Convert(err)
			b, _ := protojson.Marshal(st.Proto())
			seen = append(seen, err.Error(), string(b))
		}
	}
	var all []string
	var resolved []string
	for _, tc := range canaryCases() {
		tc.cred.AllowedCallers = []string{"callers/app"}
		c1, c2 := canary(tc.id), canary(tc.id)
		all = append(all, c1, c2)
		name := "credentials/" + tc.id

		created, err := e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: tc.id, Credential: tc.cred, Secret: tc.secret(c1)})
		if err != nil {
			t.Fatalf("CreateCredential(%s) = %v", tc.id, err)
		}
		record(created, nil)
		record(e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: tc.id, Credential: tc.cred, Secret: tc.secret(c1)}))
		// Invalid input carrying the canary: CR/LF and NUL in the value.
		record(e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: tc.id + "-crlf", Credential: tc.cred, Secret: tc.secret(c1 + "\r\nX-Injected: " + c1)}))
		record(e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: tc.id + "-nul", Credential: tc.cred, Secret: tc.secret(c1 + "\x00")}))
		record(e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: "Bad ID", Credential: tc.cred, Secret: tc.secret(c1)}))
		record(e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: name}))
		record(e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: name + "-missing"}))
		record(e.credentials.UpdateCredential(ctx, &credvaultv1.UpdateCredentialRequest{
			Credential: &credvaultv1.Credential{Name: name, DisplayName: "renamed", Etag: created.GetEtag()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}}))
		record(e.credentials.UpdateCredential(ctx, &credvaultv1.UpdateCredentialRequest{
			Credential: &credvaultv1.Credential{Name: name, DisplayName: "stale", Etag: created.GetEtag()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}}))
		record(e.credentials.UpdateCredential(ctx, &credvaultv1.UpdateCredentialRequest{
			Credential: &credvaultv1.Credential{Name: name, Placement: []*credvaultv1.ParameterTemplate{{Location: credvaultv1.Location_LOCATION_HEADER, Name: "X-Bad", ValueTemplate: "x\r\n{token}{api_key}{secret}{password}"}}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"placement"}}}))
		record(e.credentials.RotateCredentialSecret(ctx, &credvaultv1.RotateCredentialSecretRequest{Name: name, Secret: tc.secret(c2 + "\n")}))
		record(e.credentials.RotateCredentialSecret(ctx, &credvaultv1.RotateCredentialSecretRequest{Name: name, Secret: tc.secret(c2)}))
		record(e.credentials.ListCredentials(ctx, &credvaultv1.ListCredentialsRequest{}))

		resp, err := e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: name})
		if err != nil {
			t.Fatalf("ResolveCredential(%s) = %v", name, err)
		}
		b, _ := protojson.Marshal(resp)
		resolved = append(resolved, string(b))
		if !strings.Contains(string(b), c2) && tc.id != "basic" {
			t.Errorf("ResolveCredential(%s) does not carry the rotated secret", name)
		}
		if tc.id == "basic" && !strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte("svc:"+c2))) {
			t.Errorf("ResolveCredential(%s) does not carry the rotated basic credentials", name)
		}
		record(e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: name + "-missing"}))
		record(e.resolver.ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: name})) // the admin may not resolve
	}
	record(e.credentials.DeleteCredential(ctx, &credvaultv1.DeleteCredentialRequest{Name: "credentials/apikey"}))

	dbRaw := string(e.dbBytes(t))
	logs := e.logs.String()
	if !strings.Contains(logs, "ResolveCredential") {
		t.Fatalf("the logs show no ResolveCredential call; is the capture working?\n%.2000s", logs)
	}
	for _, c := range all {
		for _, s := range seen {
			if strings.Contains(s, c) {
				t.Errorf("canary %s appears in a response or error: %.300s", c, s)
			}
		}
		if strings.Contains(logs, c) {
			t.Errorf("canary %s appears in the logs", c)
		}
		for _, form := range []string{c, base64.StdEncoding.EncodeToString([]byte(c)), hex.EncodeToString([]byte(c))} {
			if strings.Contains(dbRaw, form) {
				t.Errorf("canary %s appears in the bbolt file or its audit journal (as %q)", c, form)
			}
		}
	}
	if len(resolved) != len(canaryCases()) {
		t.Errorf("resolved %d credentials, want %d", len(resolved), len(canaryCases()))
	}
}

// TestCallerTokensShownOnce: a caller token appears in the CreateCaller and
// RotateCallerToken responses only: never in Get/List, the logs, the audit
// events, or the bbolt file.
func TestCallerTokensShownOnce(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.admin()
	callers := credvaultv1.NewCallerServiceClient(e.conn)
	created, err := callers.CreateCaller(ctx, &credvaultv1.CreateCallerRequest{CallerId: "svc",
		Caller: &credvaultv1.Caller{Roles: []credvaultv1.Role{credvaultv1.Role_ROLE_RESOLVER, credvaultv1.Role_ROLE_AUDITOR}}})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := callers.RotateCallerToken(ctx, &credvaultv1.RotateCallerTokenRequest{Name: "callers/svc"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{created.GetToken(), rotated.GetToken(), e.adminToken, e.resolverToken}
	if created.GetToken() == rotated.GetToken() || !strings.HasPrefix(rotated.GetToken(), "cvt_") {
		t.Fatalf("tokens %q and %q", created.GetToken(), rotated.GetToken())
	}
	// The old token stopped working at once; the new one works.
	if _, err := e.resolver.ResolveCredential(as(created.GetToken()), &credvaultv1.ResolveCredentialRequest{Name: "credentials/x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old token after rotation = %v, want Unauthenticated", err)
	}
	audit := credvaultv1.NewAuditServiceClient(e.conn)
	events, err := audit.ListAuditEvents(as(rotated.GetToken()), &credvaultv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, m := range []proto.Message{events} {
		b, _ := protojson.Marshal(m)
		seen = append(seen, string(b))
	}
	got, _ := callers.GetCaller(ctx, &credvaultv1.GetCallerRequest{Name: "callers/svc"})
	list, _ := callers.ListCallers(ctx, &credvaultv1.ListCallersRequest{})
	for _, m := range []proto.Message{got, list} {
		b, _ := protojson.Marshal(m)
		seen = append(seen, string(b))
	}
	if got.GetTokenFingerprint() == "" {
		t.Error("GetCaller has no token fingerprint")
	}
	seen = append(seen, e.logs.String(), string(e.dbBytes(t)))
	for _, tok := range tokens {
		for _, s := range seen {
			if strings.Contains(s, tok) || strings.Contains(s, strings.TrimPrefix(tok, "cvt_")) {
				t.Errorf("a caller token (%.8s…) appears where it must not: %.200s", tok, s)
			}
		}
	}
	if !strings.Contains(e.logs.String(), "CreateCaller") {
		t.Error("the payload logs do not show CreateCaller; is the capture working?")
	}
}
