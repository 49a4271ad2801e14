package server

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// BackupPath streams an online backup: GET with an admin's bearer token.
const BackupPath = "/v1/backup"

// handleBackup streams a consistent bbolt snapshot while the vault serves.
// It is authenticated and audited like an RPC: the audit event is durable
// before the first byte is sent (fail-closed), and a denied attempt is
// recorded too.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ev := &auditlog.Event{Method: "http " + BackupPath, Caller: "anonymous", RequestID: newRequestID()}
	deny := func(status int, code codes.Code, msg string) {
		ev.Outcome, ev.Code = auditlog.OutcomeDenied, int32(code)
		if err := s.vault.RecordEvent(ctx, ev); err != nil {
			status, msg = http.StatusServiceUnavailable, "the audit log is unavailable"
		}
		http.Error(w, msg, status)
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		deny(http.StatusUnauthorized, codes.Unauthenticated, "send Authorization: Bearer <admin token>")
		return
	}
	c, err := s.vault.Authenticate(ctx, token)
	if errors.Is(err, vault.ErrUnauthenticated) || err != nil {
		deny(http.StatusUnauthorized, codes.Unauthenticated, "the caller token is not valid")
		return
	}
	ev.Caller = c.Name
	if !c.HasRole(vault.RoleAdmin) {
		deny(http.StatusForbidden, codes.PermissionDenied, "a backup requires ROLE_ADMIN")
		return
	}
	ev.Outcome = auditlog.OutcomeSuccess
	if err := s.vault.RecordEvent(ctx, ev); err != nil {
		http.Error(w, "the audit log is unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="credvault.db"`)
	w.Header().Set("Cache-Control", "no-store")
	n, err := s.vault.Backup(ctx, w)
	if err != nil {
		// Headers are gone; the client sees a short body and must discard it.
		s.log.ErrorContext(ctx, "backup failed midway", "request_id", ev.RequestID, "bytes", n, "error", err.Error())
		return
	}
	s.log.InfoContext(ctx, "backup streamed", "request_id", ev.RequestID, "caller", c.Name, "bytes", strconv.FormatInt(n, 10))
}
