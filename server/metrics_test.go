package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/server"
)

// TestMetricsMoveAndHoldNoSecret scrapes /metrics after resolves: the
// counters move, and neither the secret nor the credential name appears.
func TestMetricsMoveAndHoldNoSecret(t *testing.T) {
	e := newTestEnv(t)
	h := httptest.NewServer(e.srv.HTTPHandler())
	t.Cleanup(h.Close)
	const canarySecret = "CANARY-metrics-5f1e"
	if _, err := e.credentials.CreateCredential(e.admin(), &credvaultv1.CreateCredentialRequest{CredentialId: "metered",
		Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"callers/app"}},
		Secret:     apiKeySecret(canarySecret)}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: "credentials/metered"}); err != nil {
			t.Fatal(err)
		}
	}
	e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: "credentials/missing"})
	get := func(path string) (int, string) {
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`credvault_resolves_total{code="OK",type="api_key"} 3`,
		`credvault_resolves_total{code="PermissionDenied",type="unknown"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ResolveCredential"`,
		`credvault_data_key_cache_hits_total 3`,
		`credvault_audit_events_total`,
		`credvault_audit_group_commits_total`,
		`credvault_audit_group_commit_seconds_total`,
		"credvault_audit_journal_failed 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, canarySecret) || strings.Contains(body, "metered") {
		t.Error("/metrics holds the secret or the credential name")
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}

func TestMetricsCredentialLabelsOnlyWhenAsked(t *testing.T) {
	for _, labels := range []bool{false, true} {
		e := newTestEnv(t, func(c *envConfig) { c.Metrics = server.NewMetrics(labels) })
		h := httptest.NewServer(e.srv.HTTPHandler())
		t.Cleanup(h.Close)
		e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: "credentials/named"})
		resp, err := http.Get(h.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Contains(string(b), `credential="credentials/named"`); got != labels {
			t.Errorf("NewMetrics(%v): a credential name in /metrics = %v", labels, got)
		}
	}
}
