package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
)

// ErrorDomain is the ErrorInfo domain of credvault's errors (AIP-193).
const ErrorDomain = "credvault.dev"

// Stable ErrorInfo reasons. Clients may switch on them; never rename one.
const (
	ReasonAuthorizationRequired = "AUTHORIZATION_REQUIRED"
	ReasonRefreshFailed         = "REFRESH_FAILED"
	ReasonKMSUnavailable        = "KMS_UNAVAILABLE"
	ReasonKeyRejected           = "KMS_KEY_REJECTED"
	ReasonHostNotAllowed        = "HOST_NOT_ALLOWED"
	ReasonEtagMismatch          = "ETAG_MISMATCH"
	ReasonCorrupt               = "STORED_DATA_CORRUPT"
	ReasonInvalidClient         = "INVALID_CLIENT"
	ReasonMalformedResponse     = "TOKEN_RESPONSE_MALFORMED"
)

// statusRule maps one domain error to a status. own says whether the
// error's text is ours (names and fixed phrases, never values) and may
// reach the caller; otherwise the caller sees msg only.
type statusRule struct {
	err      error
	code     codes.Code
	reason   string
	msg      string
	own      bool
	metadata map[string]string
}

// statusRules is the one table from domain errors to gRPC status, in the
// order they are tried. Codes follow grpc's litmus test (codes.go):
// UNAVAILABLE when retrying the call may work, FAILED_PRECONDITION when the
// system state must be fixed first, ABORTED for a concurrency conflict.
var statusRules = []statusRule{
	{err: vault.ErrUnauthenticated, code: codes.Unauthenticated, msg: "a valid caller token is required", own: false},
	{err: vault.ErrPermissionDenied, code: codes.PermissionDenied, own: true},
	{err: vault.ErrHostNotAllowed, code: codes.PermissionDenied, reason: ReasonHostNotAllowed, own: true},
	{err: vault.ErrNotFound, code: codes.NotFound, own: true},
	{err: vault.ErrAlreadyExists, code: codes.AlreadyExists, own: true},
	{err: vault.ErrEtagMismatch, code: codes.Aborted, reason: ReasonEtagMismatch, own: true},
	{err: vault.ErrAuthorizationRequired, code: codes.FailedPrecondition, reason: ReasonAuthorizationRequired, own: true,
		metadata: map[string]string{"recovery": "authorize again: credvault.v1.AuthorizationService/StartAuthorization, or RotateCredentialSecret with new tokens"}},
	{err: vault.ErrRefreshFailed, code: codes.Unavailable, reason: ReasonRefreshFailed, own: true},
	{err: vault.ErrClientRejected, code: codes.FailedPrecondition, reason: ReasonInvalidClient, own: true,
		metadata: map[string]string{"recovery": "the provider refused the client id or secret: fix them with RotateCredentialSecret or UpdateCredential"}},
	{err: vault.ErrTokenResponseMalformed, code: codes.Unavailable, reason: ReasonMalformedResponse, own: true},
	{err: vault.ErrKeyUnavailable, code: codes.Unavailable, reason: ReasonKMSUnavailable, msg: "the key provider is unavailable; retry later"},
	{err: vault.ErrKeyRejected, code: codes.FailedPrecondition, reason: ReasonKeyRejected, msg: "the key provider refused the data key (disabled, deleted or wrong key)"},
	{err: vault.ErrCorrupt, code: codes.Internal, reason: ReasonCorrupt, msg: "stored data failed to decode or authenticate"},
	{err: context.DeadlineExceeded, code: codes.DeadlineExceeded, msg: "deadline exceeded"},
	{err: context.Canceled, code: codes.Canceled, msg: "canceled"},
}

// toStatus turns an error from the vault into the status the caller sees.
// An error it does not know becomes INTERNAL "internal error"; its text is
// logged under the request id, never sent.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (validation, authorisation)
	}
	var ve *authtypes.ValidationError
	if errors.As(err, &ve) {
		return invalidArgument(ve.Violations)
	}
	for _, r := range statusRules {
		if !errors.Is(err, r.err) {
			continue
		}
		msg := r.msg
		if r.own {
			msg = err.Error()
		}
		st := status.New(r.code, msg)
		if r.reason != "" {
			if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: r.reason, Domain: ErrorDomain, Metadata: r.metadata}); derr == nil {
				st = d
			}
		}
		if r.code == codes.Internal || r.code == codes.Unavailable || r.code == codes.FailedPrecondition && !r.own {
			log.ErrorContext(ctx, "request failed", "request_id", requestID(ctx), "error", err.Error())
		}
		return st.Err()
	}
	log.ErrorContext(ctx, "internal error", "request_id", requestID(ctx), "error", err.Error())
	return status.Error(codes.Internal, "internal error (request id "+requestID(ctx)+")")
}

// invalidArgument is INVALID_ARGUMENT with google.rpc.BadRequest details.
func invalidArgument(vs []authtypes.FieldViolation) error {
	br := &errdetails.BadRequest{}
	msg := "invalid argument"
	for i, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		if i == 0 {
			msg += ": " + v.Field + ": " + v.Description
		}
	}
	if len(vs) > 1 {
		msg += " (and more, see details)"
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}
