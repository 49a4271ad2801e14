package server

import (
	"context"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// auditUnary records every call that needs a caller, allowed or denied. It
// sits outside authentication so that denials are recorded too. A write
// that succeeded has already committed its event in its own transaction;
// every other call's event goes through the vault's group commit, and the
// response is released only once the event is durable (fail-closed).
func (s *Server) auditUnary(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ca := &vault.CallAudit{Method: si.FullMethod, RequestID: requestID(ctx)}
	ctx = vault.WithCallAudit(ctx, ca)
	resp, err := handler(ctx, req)
	if err == nil && ca.Recorded() {
		return resp, nil
	}
	code := status.Code(err)
	ev := &auditlog.Event{
		Caller:    callerName(ctx),
		Method:    si.FullMethod,
		Resource:  requestResource(req),
		Outcome:   outcome(code),
		Code:      int32(code),
		RequestID: requestID(ctx),
	}
	if ev.Caller == "" {
		ev.Caller = "anonymous"
	}
	if rerr := s.vault.RecordEvent(ctx, ev); rerr != nil {
		s.log.ErrorContext(ctx, "audit event not durable; failing the call", "request_id", requestID(ctx), "error", rerr.Error())
		return nil, status.Error(codes.Unavailable, "the audit log is unavailable, so the call was refused; retry later")
	}
	return resp, err
}

func outcome(c codes.Code) auditlog.Outcome {
	switch c {
	case codes.OK:
		return auditlog.OutcomeSuccess
	case codes.Unauthenticated, codes.PermissionDenied:
		return auditlog.OutcomeDenied
	}
	return auditlog.OutcomeFailure
}

// requestResource names the resource a request acts on, from the request
// alone, so that denied calls (whose handler never ran) are attributed too.
// Only resource names are taken: never a field that could hold a secret.
func requestResource(req any) string {
	switch r := req.(type) {
	case *credvaultv1.CreateCredentialRequest:
		return vault.CredentialName(r.GetCredentialId())
	case *credvaultv1.UpdateCredentialRequest:
		return r.GetCredential().GetName()
	case *credvaultv1.CreateCallerRequest:
		return vault.CallerName(r.GetCallerId())
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// auditService implements AuditService.
type auditService struct {
	credvaultv1.UnimplementedAuditServiceServer
	s *Server
}

const maxAuditPageSize = 1000

func (h *auditService) ListAuditEvents(ctx context.Context, req *credvaultv1.ListAuditEventsRequest) (*credvaultv1.ListAuditEventsResponse, error) {
	var vs violations
	limit := 100
	if n := req.GetPageSize(); n < 0 {
		vs.add("page_size", "must not be negative")
	} else if n > 0 {
		limit = min(int(n), maxAuditPageSize)
	}
	var after int64
	if tok := req.GetPageToken(); tok != "" {
		b, err := decodeToken(tok)
		n, perr := strconv.ParseInt(strings.TrimPrefix(b, "audit/"), 10, 64)
		if err != nil || perr != nil || !strings.HasPrefix(b, "audit/") || n < 0 {
			vs.add("page_token", "is not a page token of this list")
		}
		after = n
	}
	match := auditFilter(&vs, req.GetFilter())
	if err := vs.err(); err != nil {
		return nil, err
	}
	events, next, err := h.s.vault.ListAuditEvents(ctx, after, limit, match)
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	resp := &credvaultv1.ListAuditEventsResponse{}
	if next != 0 {
		resp.NextPageToken = encodePageToken("audit/" + strconv.FormatInt(next, 10))
	}
	for _, e := range events {
		resp.Events = append(resp.Events, &credvaultv1.AuditEvent{
			Sequence: e.Sequence, Time: timestamppb.New(e.Time), Caller: e.Caller, Method: e.Method,
			Resource: e.Resource, Outcome: outcomeToProto(e.Outcome), StatusCode: e.Code,
			RequestId: e.RequestID, Details: e.Details, PrevHash: e.PrevHash, Hash: e.Hash,
		})
	}
	return resp, nil
}

func outcomeToProto(o auditlog.Outcome) credvaultv1.Outcome {
	switch o {
	case auditlog.OutcomeSuccess:
		return credvaultv1.Outcome_OUTCOME_SUCCESS
	case auditlog.OutcomeDenied:
		return credvaultv1.Outcome_OUTCOME_DENIED
	case auditlog.OutcomeFailure:
		return credvaultv1.Outcome_OUTCOME_FAILURE
	}
	return credvaultv1.Outcome_OUTCOME_UNSPECIFIED
}

// auditFilter parses `caller = "…"`, `resource = "…"`, `method = "…"`,
// `time >= "RFC3339"`, `time < "RFC3339"`, joined by AND.
func auditFilter(vs *violations, filter string) func(*auditlog.Event) bool {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return nil
	}
	var preds []func(*auditlog.Event) bool
	for _, term := range strings.Split(filter, " AND ") {
		var field, op, value string
		for _, o := range []string{">=", "<", "="} {
			if l, r, ok := strings.Cut(term, o); ok {
				field, op, value = strings.TrimSpace(l), o, strings.Trim(strings.TrimSpace(r), `"`)
				break
			}
		}
		switch {
		case op == "=" && field == "caller":
			preds = append(preds, func(e *auditlog.Event) bool { return e.Caller == value })
		case op == "=" && field == "resource":
			preds = append(preds, func(e *auditlog.Event) bool { return e.Resource == value })
		case op == "=" && field == "method":
			preds = append(preds, func(e *auditlog.Event) bool { return e.Method == value })
		case field == "time" && (op == ">=" || op == "<"):
			t, err := time.Parse(time.RFC3339, value)
			if err != nil {
				vs.add("filter", "time must be RFC 3339")
				return nil
			}
			if op == ">=" {
				preds = append(preds, func(e *auditlog.Event) bool { return !e.Time.Before(t) })
			} else {
				preds = append(preds, func(e *auditlog.Event) bool { return e.Time.Before(t) })
			}
		default:
			vs.add("filter", `terms are caller = "…", resource = "…", method = "…", time >= "…", time < "…", joined by AND`)
			return nil
		}
	}
	return func(e *auditlog.Event) bool {
		for _, p := range preds {
			if !p(e) {
				return false
			}
		}
		return true
	}
}

func (h *auditService) VerifyAuditLog(ctx context.Context, _ *credvaultv1.VerifyAuditLogRequest) (*credvaultv1.VerifyAuditLogResponse, error) {
	ok, checked, bad, err := h.s.vault.VerifyAuditLog(ctx)
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return &credvaultv1.VerifyAuditLogResponse{Ok: ok, EventsChecked: checked, FirstBadSequence: bad}, nil
}
