package server

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// methodRoles is the one table of who may call what: a caller needs one of
// the listed roles. A method missing from it is denied to everyone, so a new
// RPC is closed until someone decides who may call it. Resolving further
// requires the caller to be in the credential's allowed_callers (the vault
// checks that, with the record in hand).
//
// The admin role does not include resolving: an admin cannot read a secret
// back without minting a resolver and granting it, which the audit log shows.
var methodRoles = map[string][]vault.Role{
	credvaultv1.CredentialService_CreateCredential_FullMethodName:       {vault.RoleAdmin},
	credvaultv1.CredentialService_GetCredential_FullMethodName:          {vault.RoleAdmin, vault.RoleAuditor},
	credvaultv1.CredentialService_ListCredentials_FullMethodName:        {vault.RoleAdmin, vault.RoleAuditor},
	credvaultv1.CredentialService_UpdateCredential_FullMethodName:       {vault.RoleAdmin},
	credvaultv1.CredentialService_RotateCredentialSecret_FullMethodName: {vault.RoleAdmin},
	credvaultv1.CredentialService_DeleteCredential_FullMethodName:       {vault.RoleAdmin},
	credvaultv1.ResolverService_ResolveCredential_FullMethodName:        {vault.RoleResolver},
	credvaultv1.CallerService_CreateCaller_FullMethodName:               {vault.RoleAdmin},
	credvaultv1.CallerService_GetCaller_FullMethodName:                  {vault.RoleAdmin},
	credvaultv1.CallerService_ListCallers_FullMethodName:                {vault.RoleAdmin},
	credvaultv1.CallerService_DeleteCaller_FullMethodName:               {vault.RoleAdmin},
	credvaultv1.CallerService_RotateCallerToken_FullMethodName:          {vault.RoleAdmin},
	credvaultv1.AuditService_ListAuditEvents_FullMethodName:             {vault.RoleAuditor},
	credvaultv1.AuditService_VerifyAuditLog_FullMethodName:              {vault.RoleAuditor},
	credvaultv1.AuthorizationService_StartAuthorization_FullMethodName:  {vault.RoleAdmin},
}

// openServices need no caller: health checks and server reflection (which
// describes the API, not its data).
func isOpenService(service string) bool {
	return service == "grpc.health.v1.Health" || strings.HasPrefix(service, "grpc.reflection.")
}

// authenticate is the go-grpc-middleware auth function: it turns the bearer
// token in the metadata into a caller. Its error reaches the client
// verbatim, so it is a fixed message that says nothing about the token.
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	var c *vault.Caller
	var err error
	if token, terr := auth.AuthFromMD(ctx, "bearer"); terr == nil {
		c, err = s.vault.Authenticate(ctx, token)
	} else if ids := peerIdentities(ctx); len(ids) > 0 {
		c, err = s.vault.AuthenticateMTLS(ctx, ids)
	} else {
		return nil, status.Error(codes.Unauthenticated, "missing credentials: send metadata authorization: Bearer <token>, or a client certificate")
	}
	if errors.Is(err, vault.ErrUnauthenticated) {
		return nil, status.Error(codes.Unauthenticated, "the caller token is not valid")
	}
	if err != nil {
		return nil, s.status(ctx, err)
	}
	info(ctx).caller = c
	if ca := vault.CallAuditFrom(ctx); ca != nil {
		ca.Caller = c.Name
	}
	return ctx, nil
}

// peerIdentities are the URI and DNS SANs of the client certificate, when
// TLS verified one against the client CA (a certificate that was not
// verified yields nothing).
func peerIdentities(ctx context.Context) []string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	leaf := ti.State.VerifiedChains[0][0]
	var ids []string
	for _, u := range leaf.URIs {
		ids = append(ids, u.String())
	}
	return append(ids, leaf.DNSNames...)
}

// authorizeUnary checks methodRoles. It runs after authentication.
func (s *Server) authorizeUnary(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := authorize(callerFrom(ctx), si.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func authorize(c *vault.Caller, method string) error {
	roles, ok := methodRoles[method]
	if !ok {
		return status.Error(codes.PermissionDenied, "no role may call "+method)
	}
	if c != nil && slices.ContainsFunc(roles, c.HasRole) {
		return nil
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = credvaultv1.Role(r).String()
	}
	return status.Error(codes.PermissionDenied, method+" requires one of the roles "+strings.Join(names, ", "))
}

// needsCaller selects the calls that go through authentication.
func needsCaller(_ context.Context, cm interceptors.CallMeta) bool {
	return !isOpenService(cm.Service)
}
