package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// TestRateLimitPerCaller: each caller has its own bucket; past it, calls get
// RESOURCE_EXHAUSTED while other callers go on.
func TestRateLimitPerCaller(t *testing.T) {
	e := newTestEnv(t, func(c *envConfig) { c.RateLimit, c.RateBurst = 0.001, 3 })
	var codesSeen []codes.Code
	for range 5 {
		_, err := e.credentials.ListCredentials(e.admin(), &credvaultv1.ListCredentialsRequest{})
		codesSeen = append(codesSeen, status.Code(err))
	}
	want := []codes.Code{codes.OK, codes.OK, codes.OK, codes.ResourceExhausted, codes.ResourceExhausted}
	for i := range want {
		if codesSeen[i] != want[i] {
			t.Fatalf("admin's 5 calls = %v, want %v", codesSeen, want)
		}
	}
	// Another caller is not affected.
	_, err := e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: "credentials/none"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("another caller's call = %v, want PermissionDenied (not rate limited)", err)
	}
}
