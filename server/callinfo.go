package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/credvault/credvault/vault"
)

// callInfo is what the interceptors and handlers learn about one call, for
// the logs and the audit trail. The first interceptor puts it in the
// context; later ones fill it in.
type callInfo struct {
	requestID string
	caller    *vault.Caller
}

type callInfoKey struct{}

func info(ctx context.Context) *callInfo {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return ci
	}
	return &callInfo{} // a throwaway, so callers need no nil checks
}

func requestID(ctx context.Context) string { return info(ctx).requestID }

func callerFrom(ctx context.Context) *vault.Caller { return info(ctx).caller }

func callerName(ctx context.Context) string {
	if c := callerFrom(ctx); c != nil {
		return c.Name
	}
	return ""
}

// newRequestID is 64 random bits in hex: unique enough to find a call in
// the logs, and unrelated to anything secret.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withCallInfo is the outermost interceptor: it starts the call's record and
// tells the client its request id in the response header x-request-id.
func withCallInfo(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ci := &callInfo{requestID: newRequestID()}
	ctx = context.WithValue(ctx, callInfoKey{}, ci)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", ci.requestID))
	return handler(ctx, req)
}
