package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// resolverService implements ResolverService, the hot path: no JSON, no
// payload logging of the response, no write transaction.
type resolverService struct {
	credvaultv1.UnimplementedResolverServiceServer
	s *Server
}

func (h *resolverService) ResolveCredential(ctx context.Context, req *credvaultv1.ResolveCredentialRequest) (*credvaultv1.ResolveCredentialResponse, error) {
	var vs violations
	checkCredentialName(&vs, "name", req.GetName())
	if len(req.GetTargetUrl()) > 8192 {
		vs.add("target_url", "must be at most 8192 bytes")
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	r, err := h.s.vault.Resolve(ctx, vault.ResolveRequest{
		Name:         req.GetName(),
		TargetURL:    req.GetTargetUrl(),
		Caller:       callerFrom(ctx),
		ForceRefresh: req.GetForceRefresh(),
	})
	if err != nil {
		err = h.s.status(ctx, err)
		h.s.metrics.countResolve(req.GetName(), "unknown", status.Code(err))
		return nil, err
	}
	h.s.metrics.countResolve(req.GetName(), r.Type.String(), codes.OK)
	resp := &credvaultv1.ResolveCredentialResponse{
		Parameters:        make([]*credvaultv1.ResolvedParameter, len(r.Parameters)),
		ExpireTime:        timestamppb.New(r.ExpireTime),
		CredentialVersion: r.Version,
	}
	for i, p := range r.Parameters {
		resp.Parameters[i] = &credvaultv1.ResolvedParameter{Location: credvaultv1.Location(p.Location), Name: p.Name, Value: p.Value}
	}
	return resp, nil
}
