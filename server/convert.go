package server

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/credvault/credvault/authtypes"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// The API's enums and the domain's share their numbers (the proto comments
// and authtypes say so), so conversion is a cast; a test checks every value.

func credentialFromProto(name string, p *credvaultv1.Credential) *vault.Credential {
	c := &vault.Credential{
		Name:           name,
		DisplayName:    p.GetDisplayName(),
		Description:    p.GetDescription(),
		Labels:         p.GetLabels(),
		Type:           authtypes.Type(p.GetType()),
		Placement:      placementFromProto(p.GetPlacement()),
		AllowedCallers: p.GetAllowedCallers(),
		AllowedHosts:   p.GetAllowedHosts(),
	}
	if o := p.GetOauth2(); o != nil {
		c.OAuth2 = oauth2ConfigFromProto(o)
	}
	return c
}

func placementFromProto(ps []*credvaultv1.ParameterTemplate) []authtypes.ParameterTemplate {
	if len(ps) == 0 {
		return nil
	}
	out := make([]authtypes.ParameterTemplate, len(ps))
	for i, p := range ps {
		out[i] = authtypes.ParameterTemplate{Location: authtypes.Location(p.GetLocation()), Name: p.GetName(), ValueTemplate: p.GetValueTemplate()}
	}
	return out
}

func oauth2ConfigFromProto(o *credvaultv1.OAuth2Config) *authtypes.OAuth2Config {
	return &authtypes.OAuth2Config{
		GrantType:        authtypes.GrantType(o.GetGrantType()),
		TokenURL:         o.GetTokenUrl(),
		AuthURL:          o.GetAuthUrl(),
		RevocationURL:    o.GetRevocationUrl(),
		ClientID:         o.GetClientId(),
		Scopes:           o.GetScopes(),
		Audience:         o.GetAudience(),
		ExtraParams:      o.GetExtraParams(),
		AuthStyle:        authtypes.AuthStyle(o.GetAuthStyle()),
		RedirectURI:      o.GetRedirectUri(),
		SubjectTokenType: o.GetSubjectTokenType(),
		DefaultLifetime:  o.GetDefaultLifetime().AsDuration(),
		RefreshJitter:    o.GetRefreshJitter().AsDuration(),
	}
}

func secretFromProto(p *credvaultv1.CredentialSecret) authtypes.Secret {
	var s authtypes.Secret
	switch k := p.GetKind().(type) {
	case *credvaultv1.CredentialSecret_ApiKey:
		s.APIKey = &authtypes.APIKeySecret{Key: k.ApiKey.GetKey()}
	case *credvaultv1.CredentialSecret_Bearer:
		s.Bearer = &authtypes.BearerSecret{Token: k.Bearer.GetToken()}
	case *credvaultv1.CredentialSecret_Basic:
		s.Basic = &authtypes.BasicSecret{Username: k.Basic.GetUsername(), Password: k.Basic.GetPassword()}
	case *credvaultv1.CredentialSecret_Secret:
		s.Generic = &authtypes.GenericSecret{Value: k.Secret.GetValue()}
	case *credvaultv1.CredentialSecret_Oauth2:
		o := k.Oauth2
		s.OAuth2 = &authtypes.OAuth2Secret{
			ClientSecret: o.GetClientSecret(),
			AccessToken:  o.GetAccessToken(),
			RefreshToken: o.GetRefreshToken(),
			SignInToken:  o.GetSignInToken(),

			AdditionalClientSecrets: o.GetAdditionalClientSecrets(),
		}
		if o.GetExpireTime() != nil {
			s.OAuth2.Expiry = o.GetExpireTime().AsTime()
		}
	}
	return s
}

// credentialToProto builds the read model. It has no secret field to copy
// into: the schema itself keeps this function honest.
func credentialToProto(c *vault.Credential) *credvaultv1.Credential {
	p := &credvaultv1.Credential{
		Name:           c.Name,
		DisplayName:    c.DisplayName,
		Description:    c.Description,
		Labels:         c.Labels,
		Type:           credvaultv1.CredentialType(c.Type),
		AllowedCallers: c.AllowedCallers,
		AllowedHosts:   c.AllowedHosts,
		CreateTime:     timestamp(c.CreateTime),
		UpdateTime:     timestamp(c.UpdateTime),
		Etag:           c.Etag(),
		SecretStatus: &credvaultv1.SecretStatus{
			SetTime:               timestamp(c.Secret.SetTime),
			Version:               c.Secret.Version,
			Fingerprint:           c.Secret.Fingerprint,
			TokenStatus:           credvaultv1.TokenStatus(c.Secret.TokenStatus),
			AccessTokenExpireTime: timestamp(c.Secret.AccessTokenExpiry),
			HasRefreshToken:       c.Secret.HasRefreshToken,
			HasClientSecret:       c.Secret.HasClientSecret,
			LastRefreshTime:       timestamp(c.Secret.LastRefreshTime),
			LastError:             c.Secret.LastError,
		},
	}
	for _, t := range c.Placement {
		p.Placement = append(p.Placement, &credvaultv1.ParameterTemplate{
			Location: credvaultv1.Location(t.Location), Name: t.Name, ValueTemplate: t.ValueTemplate})
	}
	if o := c.OAuth2; o != nil {
		p.Config = &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{
			GrantType:        credvaultv1.GrantType(o.GrantType),
			TokenUrl:         o.TokenURL,
			AuthUrl:          o.AuthURL,
			RevocationUrl:    o.RevocationURL,
			ClientId:         o.ClientID,
			Scopes:           o.Scopes,
			Audience:         o.Audience,
			ExtraParams:      o.ExtraParams,
			AuthStyle:        credvaultv1.AuthStyle(o.AuthStyle),
			RedirectUri:      o.RedirectURI,
			SubjectTokenType: o.SubjectTokenType,
			DefaultLifetime:  duration(o.DefaultLifetime),
			RefreshJitter:    duration(o.RefreshJitter),
		}}
	}
	return p
}

func callerToProto(v *vault.Vault, c *vault.Caller) *credvaultv1.Caller {
	p := &credvaultv1.Caller{
		Name:             c.Name,
		DisplayName:      c.DisplayName,
		MtlsIdentity:     c.MTLSIdentity,
		CreateTime:       timestamp(c.CreateTime),
		TokenCreateTime:  timestamp(c.TokenCreateTime),
		TokenFingerprint: v.TokenFingerprint(c),
	}
	for _, r := range c.Roles {
		p.Roles = append(p.Roles, credvaultv1.Role(r))
	}
	return p
}

func duration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
