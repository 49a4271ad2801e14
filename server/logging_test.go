package server_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// At the default level a successful call leaves no line (the audit log has
// it) and a failed one leaves one "finished call" line with its code.
func TestCallLogLines(t *testing.T) {
	logs := &syncBuffer{}
	e := newTestEnv(t, func(c *envConfig) {
		c.LogPayloads = false
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	if _, err := e.credentials.ListCredentials(e.admin(), &credvaultv1.ListCredentialsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.credentials.GetCredential(e.admin(), &credvaultv1.GetCredentialRequest{Name: "credentials/missing"}); err == nil {
		t.Fatal("GetCredential of a missing credential succeeded")
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "finished call" {
			lines = append(lines, rec)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("finished-call lines = %d, want 1 (the failure only):\n%s", len(lines), logs.String())
	}
	want := map[string]string{"level": "INFO", "grpc.service": "credvault.v1.CredentialService", "grpc.method": "GetCredential",
		"grpc.code": "NotFound", "caller": "callers/admin"}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("%s = %v, want %s", k, lines[0][k], v)
		}
	}
	for _, k := range []string{"request_id", "grpc.error", "grpc.time_ms", "peer.address"} {
		if lines[0][k] == nil || lines[0][k] == "" {
			t.Errorf("the line has no %s: %v", k, lines[0])
		}
	}
}
