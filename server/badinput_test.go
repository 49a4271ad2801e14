package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

func apiKeySecret(k string) *credvaultv1.CredentialSecret {
	return &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: k}}}
}

func apiKeyCred() *credvaultv1.Credential {
	return &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY}
}

func headerPlacement(name, tmpl string) []*credvaultv1.ParameterTemplate {
	return []*credvaultv1.ParameterTemplate{{Location: credvaultv1.Location_LOCATION_HEADER, Name: name, ValueTemplate: tmpl}}
}

// fieldViolations returns the fields named in a status's BadRequest detail.
func fieldViolations(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// TestBadInput sends hostile and malformed requests. Each must get its code,
// INVALID_ARGUMENT with a field violation naming the field, and leave no
// record behind.
func TestBadInput(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.admin()
	existing, err := e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{
		CredentialId: "existing", Credential: apiKeyCred(), Secret: apiKeySecret("k-1")})
	if err != nil {
		t.Fatal(err)
	}
	// Make the etag stale.
	if _, err := e.credentials.UpdateCredential(ctx, &credvaultv1.UpdateCredentialRequest{
		Credential: &credvaultv1.Credential{Name: existing.GetName(), Description: "changed"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}}); err != nil {
		t.Fatal(err)
	}
	create := func(id string, c *credvaultv1.Credential, s *credvaultv1.CredentialSecret) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: id, Credential: c, Secret: s})
			return err
		}
	}
	withPlacement := func(t credvaultv1.CredentialType, p []*credvaultv1.ParameterTemplate) *credvaultv1.Credential {
		return &credvaultv1.Credential{Type: t, Placement: p}
	}
	update := func(c *credvaultv1.Credential, paths ...string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.credentials.UpdateCredential(ctx, &credvaultv1.UpdateCredentialRequest{Credential: c, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			return err
		}
	}
	tests := []struct {
		name     string
		call     func(context.Context) error
		code     codes.Code
		field    string // prefix of a field violation; "" for none
		noRecord string // credential that must not exist afterwards
	}{
		{"unknown type", create("t1", &credvaultv1.Credential{Type: 99}, apiKeySecret("k")), codes.InvalidArgument, "credential.type", "t1"},
		{"unspecified type", create("t2", &credvaultv1.Credential{}, apiKeySecret("k")), codes.InvalidArgument, "credential.type", "t2"},
		{"missing credential", create("t3", nil, apiKeySecret("k")), codes.InvalidArgument, "credential", "t3"},
		{"missing secret", create("t4", apiKeyCred(), nil), codes.InvalidArgument, "secret", "t4"},
		{"mismatched secret kind", create("t5", apiKeyCred(), &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Bearer{Bearer: &credvaultv1.BearerSecret{Token: "x"}}}), codes.InvalidArgument, "secret", "t5"},
		{"empty secret", create("t6", apiKeyCred(), apiKeySecret("")), codes.InvalidArgument, "secret.api_key", "t6"},
		{"invalid id", create("Bad_Id", apiKeyCred(), apiKeySecret("k")), codes.InvalidArgument, "credential_id", ""},
		{"id too long", create("a"+strings.Repeat("b", 63), apiKeyCred(), apiKeySecret("k")), codes.InvalidArgument, "credential_id", ""},
		{"duplicate id", create("existing", apiKeyCred(), apiKeySecret("k")), codes.AlreadyExists, "", ""},
		{"CRLF in secret expanded into a header", create("t7", apiKeyCred(), apiKeySecret("k\r\nX-Evil: 1")), codes.InvalidArgument, "", "t7"},
		{"LF in template", create("t8", withPlacement(credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, headerPlacement("X-Key", "a\n{api_key}")), apiKeySecret("k")), codes.InvalidArgument, "credential.placement[0]", "t8"},
		{"NUL in secret", create("t9", apiKeyCred(), apiKeySecret("k\x00")), codes.InvalidArgument, "secret.api_key", "t9"},
		{"CR in query value", create("t10", withPlacement(credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, []*credvaultv1.ParameterTemplate{{Location: credvaultv1.Location_LOCATION_QUERY, Name: "k", ValueTemplate: "{api_key}"}}), apiKeySecret("k\r")), codes.InvalidArgument, "", "t10"},
		{"invalid header name", create("t11", withPlacement(credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, headerPlacement("X Api", "{api_key}")), apiKeySecret("k")), codes.InvalidArgument, "credential.placement[0].name", "t11"},
		{"CRLF in header name", create("t12", withPlacement(credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, headerPlacement("X-A\r\nB", "{api_key}")), apiKeySecret("k")), codes.InvalidArgument, "credential.placement[0].name", "t12"},
		{"unknown placeholder", create("t13", withPlacement(credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, headerPlacement("X-Key", "{password}")), apiKeySecret("k")), codes.InvalidArgument, "credential.placement[0].value_template", "t13"},
		{"unknown location", create("t14", withPlacement(credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, []*credvaultv1.ParameterTemplate{{Location: 42, Name: "x", ValueTemplate: "{api_key}"}}), apiKeySecret("k")), codes.InvalidArgument, "credential.placement[0].location", "t14"},
		{"secret without placement", create("t15", &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_SECRET}, &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Secret{Secret: &credvaultv1.GenericSecret{Value: "v"}}}), codes.InvalidArgument, "credential.placement", "t15"},
		{"bad allowed caller", create("t16", &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"billing"}}, apiKeySecret("k")), codes.InvalidArgument, "credential.allowed_callers[0]", "t16"},
		{"bad allowed host", create("t17", &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedHosts: []string{"*.*.example.com"}}, apiKeySecret("k")), codes.InvalidArgument, "credential.allowed_hosts[0]", "t17"},
		{"oauth2 config on api key", create("t18", &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, Config: &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{ClientId: "c"}}}, apiKeySecret("k")), codes.InvalidArgument, "credential.oauth2", "t18"},
		{"oauth2 without token url", create("t19", &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_OAUTH2, Config: &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{GrantType: credvaultv1.GrantType_GRANT_TYPE_CLIENT_CREDENTIALS, ClientId: "c"}}}, &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Oauth2{Oauth2: &credvaultv1.OAuth2Secret{ClientSecret: "s"}}}), codes.InvalidArgument, "credential.oauth2.token_url", "t19"},
		{"oversize message", create("t20", &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, Description: strings.Repeat("x", 600<<10)}, apiKeySecret("k")), codes.ResourceExhausted, "", "t20"},
		{"oversize secret", create("t21", apiKeyCred(), apiKeySecret(strings.Repeat("k", 20<<10))), codes.InvalidArgument, "secret.api_key", "t21"},
		{"stale etag", update(&credvaultv1.Credential{Name: existing.GetName(), DisplayName: "x", Etag: existing.GetEtag()}, "display_name"), codes.Aborted, "", ""},
		{"update unknown field", update(&credvaultv1.Credential{Name: existing.GetName()}, "colour"), codes.InvalidArgument, "update_mask", ""},
		{"update type", update(&credvaultv1.Credential{Name: existing.GetName(), Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_BEARER}, "type"), codes.InvalidArgument, "update_mask", ""},
		{"update placement with CRLF", update(&credvaultv1.Credential{Name: existing.GetName(), Placement: headerPlacement("X-Key", "{api_key}\r\n")}, "placement"), codes.InvalidArgument, "credential.placement[0]", ""},
		{"update missing", update(&credvaultv1.Credential{Name: "credentials/nope", DisplayName: "x"}, "display_name"), codes.NotFound, "", "nope"},
		{"update bad name", update(&credvaultv1.Credential{Name: "nope", DisplayName: "x"}, "display_name"), codes.InvalidArgument, "credential.name", ""},
		{"get bad name", func(ctx context.Context) error {
			_, err := e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: "credentials/UPPER"})
			return err
		}, codes.InvalidArgument, "name", ""},
		{"get missing", func(ctx context.Context) error {
			_, err := e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: "credentials/nope"})
			return err
		}, codes.NotFound, "", ""},
		{"negative page size", func(ctx context.Context) error {
			_, err := e.credentials.ListCredentials(ctx, &credvaultv1.ListCredentialsRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size", ""},
		{"forged page token", func(ctx context.Context) error {
			_, err := e.credentials.ListCredentials(ctx, &credvaultv1.ListCredentialsRequest{PageToken: "!!notbase64"})
			return err
		}, codes.InvalidArgument, "page_token", ""},
		{"bad filter", func(ctx context.Context) error {
			_, err := e.credentials.ListCredentials(ctx, &credvaultv1.ListCredentialsRequest{Filter: "secret = x"})
			return err
		}, codes.InvalidArgument, "filter", ""},
		{"rotate with wrong kind", func(ctx context.Context) error {
			_, err := e.credentials.RotateCredentialSecret(ctx, &credvaultv1.RotateCredentialSecretRequest{Name: existing.GetName(), Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Basic{Basic: &credvaultv1.BasicSecret{Username: "u", Password: "p"}}}})
			return err
		}, codes.InvalidArgument, "secret", ""},
		{"rotate stale etag", func(ctx context.Context) error {
			_, err := e.credentials.RotateCredentialSecret(ctx, &credvaultv1.RotateCredentialSecretRequest{Name: existing.GetName(), Secret: apiKeySecret("k2"), Etag: existing.GetEtag()})
			return err
		}, codes.Aborted, "", ""},
		{"delete stale etag", func(ctx context.Context) error {
			_, err := e.credentials.DeleteCredential(ctx, &credvaultv1.DeleteCredentialRequest{Name: existing.GetName(), Etag: existing.GetEtag()})
			return err
		}, codes.Aborted, "", ""},
		{"resolve missing", func(ctx context.Context) error {
			_, err := e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: "credentials/nope"})
			return err
		}, codes.PermissionDenied, "", ""},
		{"no token", func(context.Context) error {
			_, err := e.credentials.GetCredential(context.Background(), &credvaultv1.GetCredentialRequest{Name: existing.GetName()})
			return err
		}, codes.Unauthenticated, "", ""},
		{"wrong token", func(context.Context) error {
			_, err := e.credentials.GetCredential(as("cvt_wrong"), &credvaultv1.GetCredentialRequest{Name: existing.GetName()})
			return err
		}, codes.Unauthenticated, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctx)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("%s: code = %v (%v), want %v", tc.name, got, err, tc.code)
			}
			if tc.field != "" {
				fields := fieldViolations(err)
				found := false
				for _, f := range fields {
					found = found || strings.HasPrefix(f, tc.field)
				}
				if !found {
					t.Errorf("%s: field violations = %q, want one starting with %q", tc.name, fields, tc.field)
				}
			}
			if tc.noRecord != "" {
				_, err := e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: "credentials/" + tc.noRecord})
				if status.Code(err) != codes.NotFound {
					t.Errorf("%s: GetCredential afterwards = %v, want NotFound (no partial record)", tc.name, err)
				}
			}
		})
	}
	// The failed writes left the stored credential as it was.
	got, err := e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: existing.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSecretStatus().GetVersion() != 1 || got.GetDisplayName() != "" {
		t.Errorf("after failed writes: version %d display_name %q, want 1 and empty", got.GetSecretStatus().GetVersion(), got.GetDisplayName())
	}
}
