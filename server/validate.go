package server

import (
	"encoding/base64"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/credvault/credvault/authtypes"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// This file checks the shape of requests: resource names, page sizes and
// tokens, filters and update masks. What a credential may contain is the
// domain's to say (vault and authtypes); both return field violations that
// toStatus turns into one INVALID_ARGUMENT with google.rpc.BadRequest.

// Paging bounds (AIP-158).
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

type violations []authtypes.FieldViolation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, authtypes.FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return invalidArgument(vs)
}

func checkCredentialName(vs *violations, field, name string) {
	if _, ok := vault.ParseCredentialName(name); !ok {
		vs.add(field, "must be credentials/{credential_id} with credential_id matching ^[a-z][a-z0-9-]{0,62}$")
	}
}

func checkCallerName(vs *violations, field, name string) {
	if _, ok := vault.ParseCallerName(name); !ok {
		vs.add(field, "must be callers/{caller_id} with caller_id matching ^[a-z][a-z0-9-]{0,62}$")
	}
}

// pageSize applies the default and the maximum.
func pageSize(vs *violations, n int32) int {
	switch {
	case n < 0:
		vs.add("page_size", "must not be negative")
		return 0
	case n == 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return int(n)
}

// Page tokens are opaque to clients: the base64url of the last name of the
// previous page, which must be a resource name of the listed collection.
func encodePageToken(after string) string {
	if after == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(after))
}

func decodePageToken(vs *violations, token, collection string) string {
	if token == "" {
		return ""
	}
	b, err := decodeToken(token)
	if err != nil || !strings.HasPrefix(b, collection+"/") {
		vs.add("page_token", "is not a page token of this list")
		return ""
	}
	return b
}

func decodeToken(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return string(b), err
}

// credentialFilter parses the ListCredentials filter: terms of
// `type = CREDENTIAL_TYPE_X` or `labels.KEY = "VALUE"` joined by AND.
func credentialFilter(vs *violations, filter string) func(*vault.Credential) bool {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return nil
	}
	var preds []func(*vault.Credential) bool
	for _, term := range strings.Split(filter, " AND ") {
		lhs, rhs, ok := strings.Cut(term, "=")
		lhs, rhs = strings.TrimSpace(lhs), strings.Trim(strings.TrimSpace(rhs), `"`)
		switch {
		case !ok:
			vs.add("filter", "each term must be FIELD = VALUE, joined by AND")
			return nil
		case lhs == "type":
			t, known := credvaultv1.CredentialType_value[rhs]
			if !known {
				vs.add("filter", "unknown credential type")
				return nil
			}
			preds = append(preds, func(c *vault.Credential) bool { return c.Type == authtypes.Type(t) })
		case strings.HasPrefix(lhs, "labels."):
			key := strings.TrimPrefix(lhs, "labels.")
			preds = append(preds, func(c *vault.Credential) bool { return c.Labels[key] == rhs })
		default:
			vs.add("filter", "can filter on type and labels.KEY only")
			return nil
		}
	}
	return func(c *vault.Credential) bool {
		for _, p := range preds {
			if !p(c) {
				return false
			}
		}
		return true
	}
}

// updatableFields are the update_mask paths UpdateCredential accepts. The
// secret is not among them: RotateCredentialSecret replaces it.
var updatableFields = map[string]func(dst, src *vault.Credential){
	"display_name":    func(d, s *vault.Credential) { d.DisplayName = s.DisplayName },
	"description":     func(d, s *vault.Credential) { d.Description = s.Description },
	"labels":          func(d, s *vault.Credential) { d.Labels = s.Labels },
	"placement":       func(d, s *vault.Credential) { d.Placement = s.Placement },
	"allowed_callers": func(d, s *vault.Credential) { d.AllowedCallers = s.AllowedCallers },
	"allowed_hosts":   func(d, s *vault.Credential) { d.AllowedHosts = s.AllowedHosts },
	"oauth2":          func(d, s *vault.Credential) { d.OAuth2 = s.OAuth2 },
}

// outputOnlyFields may not be named in an update mask.
var outputOnlyFields = map[string]string{
	"name":          "is the resource's identity and cannot change",
	"type":          "is immutable: create a new credential instead",
	"secret_status": "is output only; use RotateCredentialSecret to replace the secret",
	"create_time":   "is output only",
	"update_time":   "is output only",
	"etag":          "is compared, not updated",
}

// updateMask returns the setters of the mask's paths. An empty mask means
// every populated updatable field (AIP-134); "*" means all of them.
func updateMask(vs *violations, paths []string, src *credvaultv1.Credential) []func(dst, s *vault.Credential) {
	if len(paths) == 0 {
		m := src.ProtoReflect()
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if _, ok := updatableFields[string(fd.Name())]; ok {
				paths = append(paths, string(fd.Name()))
			}
			return true
		})
		if len(paths) == 0 {
			vs.add("update_mask", "names no field and the credential sets none")
		}
	}
	var setters []func(dst, s *vault.Credential)
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "*" {
			for _, f := range updatableFields {
				setters = append(setters, f)
			}
			continue
		}
		// oauth2 sub-fields (oauth2.scopes) replace the whole config: the
		// caller sends the config it wants, validated as a whole.
		top, _, _ := strings.Cut(p, ".")
		if seen[top] {
			continue
		}
		seen[top] = true
		if why, ok := outputOnlyFields[top]; ok {
			vs.add("update_mask", "%s %s", top, why)
			continue
		}
		f, ok := updatableFields[top]
		if !ok {
			vs.add("update_mask", "unknown field %q", truncateField(p))
			continue
		}
		setters = append(setters, f)
	}
	return setters
}

func truncateField(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// requireMessage adds a violation when a required message field is unset.
func requireMessage(vs *violations, field string, m proto.Message) bool {
	if m == nil || !m.ProtoReflect().IsValid() {
		vs.add(field, "is required")
		return false
	}
	return true
}
