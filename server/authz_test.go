package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// allowed is the expected outcome of a call the caller may make: anything
// but a denial (an empty request may well be INVALID_ARGUMENT).
const allowed = codes.Code(999)

// TestEveryRPCByEveryRole calls every RPC of every registered credvault
// service as every kind of caller and checks who gets through. It also
// checks that each call, allowed or denied, left exactly one audit event.
func TestEveryRPCByEveryRole(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	admin := e.admin()
	if _, err := e.credentials.CreateCredential(admin, &credvaultv1.CreateCredentialRequest{CredentialId: "granted",
		Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"callers/app"}},
		Secret:     apiKeySecret("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.credentials.CreateCredential(admin, &credvaultv1.CreateCredentialRequest{CredentialId: "other",
		Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"callers/someone"}},
		Secret:     apiKeySecret("k")}); err != nil {
		t.Fatal(err)
	}
	callers := credvaultv1.NewCallerServiceClient(e.conn)
	mint := func(id string, role credvaultv1.Role) string {
		r, err := callers.CreateCaller(admin, &credvaultv1.CreateCallerRequest{CallerId: id, Caller: &credvaultv1.Caller{Roles: []credvaultv1.Role{role}}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetToken()
	}
	auditor := mint("auditor", credvaultv1.Role_ROLE_AUDITOR)
	revoked := mint("gone", credvaultv1.Role_ROLE_ADMIN)
	if _, err := callers.RotateCallerToken(admin, &credvaultv1.RotateCallerTokenRequest{Name: "callers/gone"}); err != nil {
		t.Fatal(err)
	}

	type who struct {
		name string
		ctx  context.Context
	}
	roles := []who{
		{"admin", admin},
		{"resolver granted", e.app()},
		{"auditor", as(auditor)},
		{"unknown token", as("cvt_unknown")},
		{"no token", ctx},
		{"revoked token", as(revoked)},
	}
	adminOnly := map[string]codes.Code{"admin": allowed, "resolver granted": codes.PermissionDenied, "auditor": codes.PermissionDenied}
	adminOrAuditor := map[string]codes.Code{"admin": allowed, "resolver granted": codes.PermissionDenied, "auditor": allowed}
	auditorOnly := map[string]codes.Code{"admin": codes.PermissionDenied, "resolver granted": codes.PermissionDenied, "auditor": allowed}
	want := map[string]map[string]codes.Code{
		"CreateCredential":       adminOnly,
		"GetCredential":          adminOrAuditor,
		"ListCredentials":        adminOrAuditor,
		"UpdateCredential":       adminOnly,
		"RotateCredentialSecret": adminOnly,
		"DeleteCredential":       adminOnly,
		"ResolveCredential":      {"admin": codes.PermissionDenied, "resolver granted": codes.OK, "auditor": codes.PermissionDenied},
		"CreateCaller":           adminOnly,
		"GetCaller":              adminOnly,
		"ListCallers":            adminOnly,
		"DeleteCaller":           adminOnly,
		"RotateCallerToken":      adminOnly,
		"ListAuditEvents":        auditorOnly,
		"VerifyAuditLog":         auditorOnly,
		"StartAuthorization":     adminOnly,
	}
	// Requests that make sense; others are empty messages.
	requests := map[string]proto.Message{
		"GetCredential":     &credvaultv1.GetCredentialRequest{Name: "credentials/granted"},
		"ResolveCredential": &credvaultv1.ResolveCredentialRequest{Name: "credentials/granted"},
	}
	_, before, _, _ := e.vault.VerifyAuditLog(ctx)
	calls := 0
	for _, sd := range credvaultServices(t) {
		for i := 0; i < sd.Methods().Len(); i++ {
			m := sd.Methods().Get(i)
			method := "/" + string(sd.FullName()) + "/" + string(m.Name())
			rows, ok := want[string(m.Name())]
			if !ok {
				t.Errorf("%s has no row in this test", method)
				continue
			}
			for _, w := range roles {
				wantCode, ok := rows[w.name]
				if !ok {
					wantCode = codes.Unauthenticated
				}
				req := requests[string(m.Name())]
				if req == nil {
					req = dynamicpb.NewMessage(m.Input())
				}
				resp := dynamicpb.NewMessage(m.Output())
				err := e.conn.Invoke(w.ctx, method, req, resp)
				calls++
				got := status.Code(err)
				denied := got == codes.PermissionDenied || got == codes.Unauthenticated
				switch {
				case wantCode == allowed && denied:
					t.Errorf("%s as %s = %v, want allowed", method, w.name, err)
				case wantCode != allowed && got != wantCode:
					t.Errorf("%s as %s = %v, want %v", method, w.name, err, wantCode)
				}
			}
		}
	}
	// A resolver may resolve only what names it; an unknown name looks the same.
	for _, name := range []string{"credentials/other", "credentials/missing"} {
		_, err := e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: name})
		calls++
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("ResolveCredential(%s) as a resolver not granted = %v, want PermissionDenied", name, err)
		}
	}
	ok, after, _, err := e.vault.VerifyAuditLog(ctx)
	if err != nil || !ok {
		t.Fatalf("VerifyAuditLog = %v, %v", ok, err)
	}
	if after-before != int64(calls) {
		t.Errorf("%d calls left %d audit events, want one each", calls, after-before)
	}
}
