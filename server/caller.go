package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// callerService implements CallerService. A caller's token appears in a
// response exactly twice in its life: from CreateCaller and from
// RotateCallerToken, to the admin who minted it.
type callerService struct {
	credvaultv1.UnimplementedCallerServiceServer
	s *Server
}

func (h *callerService) CreateCaller(ctx context.Context, req *credvaultv1.CreateCallerRequest) (*credvaultv1.CreateCallerResponse, error) {
	var vs violations
	if !vault.ValidID(req.GetCallerId()) {
		vs.add("caller_id", "must match ^[a-z][a-z0-9-]{0,62}$")
	}
	requireMessage(&vs, "caller", req.GetCaller())
	if err := vs.err(); err != nil {
		return nil, err
	}
	p := req.GetCaller()
	c := &vault.Caller{Name: vault.CallerName(req.GetCallerId()), DisplayName: p.GetDisplayName(), MTLSIdentity: p.GetMtlsIdentity()}
	for _, r := range p.GetRoles() {
		c.Roles = append(c.Roles, vault.Role(r))
	}
	created, token, err := h.s.vault.CreateCaller(ctx, c)
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return &credvaultv1.CreateCallerResponse{Caller: callerToProto(h.s.vault, created), Token: token}, nil
}

func (h *callerService) GetCaller(ctx context.Context, req *credvaultv1.GetCallerRequest) (*credvaultv1.Caller, error) {
	var vs violations
	checkCallerName(&vs, "name", req.GetName())
	if err := vs.err(); err != nil {
		return nil, err
	}
	c, err := h.s.vault.GetCaller(ctx, req.GetName())
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return callerToProto(h.s.vault, c), nil
}

func (h *callerService) ListCallers(ctx context.Context, req *credvaultv1.ListCallersRequest) (*credvaultv1.ListCallersResponse, error) {
	var vs violations
	limit := pageSize(&vs, req.GetPageSize())
	after := decodePageToken(&vs, req.GetPageToken(), "callers")
	if err := vs.err(); err != nil {
		return nil, err
	}
	cs, next, err := h.s.vault.ListCallers(ctx, after, limit)
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	resp := &credvaultv1.ListCallersResponse{NextPageToken: encodePageToken(next)}
	for _, c := range cs {
		resp.Callers = append(resp.Callers, callerToProto(h.s.vault, c))
	}
	return resp, nil
}

func (h *callerService) DeleteCaller(ctx context.Context, req *credvaultv1.DeleteCallerRequest) (*emptypb.Empty, error) {
	var vs violations
	checkCallerName(&vs, "name", req.GetName())
	if err := vs.err(); err != nil {
		return nil, err
	}
	if err := h.s.vault.DeleteCaller(ctx, req.GetName()); err != nil {
		return nil, h.s.status(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

func (h *callerService) RotateCallerToken(ctx context.Context, req *credvaultv1.RotateCallerTokenRequest) (*credvaultv1.RotateCallerTokenResponse, error) {
	var vs violations
	checkCallerName(&vs, "name", req.GetName())
	if err := vs.err(); err != nil {
		return nil, err
	}
	c, token, err := h.s.vault.RotateCallerToken(ctx, req.GetName())
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return &credvaultv1.RotateCallerTokenResponse{Caller: callerToProto(h.s.vault, c), Token: token}, nil
}
