package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// credentialService implements CredentialService: proto in, domain call,
// proto out. Errors go through toStatus.
type credentialService struct {
	credvaultv1.UnimplementedCredentialServiceServer
	s *Server
}

func (h *credentialService) CreateCredential(ctx context.Context, req *credvaultv1.CreateCredentialRequest) (*credvaultv1.Credential, error) {
	var vs violations
	if !vault.ValidID(req.GetCredentialId()) {
		vs.add("credential_id", "must match ^[a-z][a-z0-9-]{0,62}$")
	}
	requireMessage(&vs, "credential", req.GetCredential())
	requireMessage(&vs, "secret", req.GetSecret())
	if err := vs.err(); err != nil {
		return nil, err
	}
	name := vault.CredentialName(req.GetCredentialId())
	c, err := h.s.vault.CreateCredential(ctx, credentialFromProto(name, req.GetCredential()), secretFromProto(req.GetSecret()))
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return credentialToProto(c), nil
}

func (h *credentialService) GetCredential(ctx context.Context, req *credvaultv1.GetCredentialRequest) (*credvaultv1.Credential, error) {
	var vs violations
	checkCredentialName(&vs, "name", req.GetName())
	if err := vs.err(); err != nil {
		return nil, err
	}
	c, err := h.s.vault.GetCredential(ctx, req.GetName())
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return credentialToProto(c), nil
}

func (h *credentialService) ListCredentials(ctx context.Context, req *credvaultv1.ListCredentialsRequest) (*credvaultv1.ListCredentialsResponse, error) {
	var vs violations
	limit := pageSize(&vs, req.GetPageSize())
	after := decodePageToken(&vs, req.GetPageToken(), "credentials")
	match := credentialFilter(&vs, req.GetFilter())
	if err := vs.err(); err != nil {
		return nil, err
	}
	cs, next, err := h.s.vault.ListCredentials(ctx, after, limit, match)
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	resp := &credvaultv1.ListCredentialsResponse{NextPageToken: encodePageToken(next)}
	for _, c := range cs {
		resp.Credentials = append(resp.Credentials, credentialToProto(c))
	}
	return resp, nil
}

func (h *credentialService) UpdateCredential(ctx context.Context, req *credvaultv1.UpdateCredentialRequest) (*credvaultv1.Credential, error) {
	var vs violations
	var setters []func(dst, src *vault.Credential)
	if requireMessage(&vs, "credential", req.GetCredential()) {
		checkCredentialName(&vs, "credential.name", req.GetCredential().GetName())
		setters = updateMask(&vs, req.GetUpdateMask().GetPaths(), req.GetCredential())
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	name := req.GetCredential().GetName()
	src := credentialFromProto(name, req.GetCredential())
	c, err := h.s.vault.UpdateCredential(ctx, name, req.GetCredential().GetEtag(), func(dst *vault.Credential) {
		for _, set := range setters {
			set(dst, src)
		}
	})
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return credentialToProto(c), nil
}

func (h *credentialService) RotateCredentialSecret(ctx context.Context, req *credvaultv1.RotateCredentialSecretRequest) (*credvaultv1.Credential, error) {
	var vs violations
	checkCredentialName(&vs, "name", req.GetName())
	requireMessage(&vs, "secret", req.GetSecret())
	if err := vs.err(); err != nil {
		return nil, err
	}
	c, err := h.s.vault.RotateCredentialSecret(ctx, req.GetName(), req.GetEtag(), secretFromProto(req.GetSecret()))
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return credentialToProto(c), nil
}

func (h *credentialService) DeleteCredential(ctx context.Context, req *credvaultv1.DeleteCredentialRequest) (*emptypb.Empty, error) {
	var vs violations
	checkCredentialName(&vs, "name", req.GetName())
	if err := vs.err(); err != nil {
		return nil, err
	}
	if err := h.s.vault.DeleteCredential(ctx, req.GetName(), req.GetEtag()); err != nil {
		return nil, h.s.status(ctx, err)
	}
	return &emptypb.Empty{}, nil
}
