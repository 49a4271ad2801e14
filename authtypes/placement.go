package authtypes

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Limits on placements: they bound the work of every resolve.
const (
	MaxPlacements       = 32
	MaxParameterNameLen = 256
	MaxTemplateLen      = 4096
)

// ValidateDefinition checks the non-secret definition. Field paths are
// prefixed with prefix (e.g. "credential").
func ValidateDefinition(prefix string, d Definition) []FieldViolation {
	var vs []FieldViolation
	bad := func(field, format string, args ...any) {
		vs = append(vs, FieldViolation{Field: prefix + "." + field, Description: fmt.Sprintf(format, args...)})
	}
	k, ok := kinds[d.Type]
	if !ok {
		bad("type", "must be one of CREDENTIAL_TYPE_API_KEY, _BEARER, _BASIC, _SECRET, _OAUTH2")
		return vs
	}
	if len(d.Placement) == 0 && k.defaultPlacement() == nil {
		bad("placement", "is required for this type: say where the secret goes")
	}
	if len(d.Placement) > MaxPlacements {
		bad("placement", "at most %d entries", MaxPlacements)
	}
	for i, p := range d.Placement {
		field := fmt.Sprintf("placement[%d]", i)
		if !locationNames.known(p.Location) {
			bad(field+".location", "must be LOCATION_HEADER, _QUERY, _BODY or _PATH")
		}
		switch {
		case p.Name == "":
			bad(field+".name", "is required")
		case len(p.Name) > MaxParameterNameLen:
			bad(field+".name", "must be at most %d bytes", MaxParameterNameLen)
		case strings.ContainsAny(p.Name, "\r\n\x00"):
			bad(field+".name", "must not contain CR, LF or NUL")
		case p.Location == LocationHeader && !httpguts.ValidHeaderFieldName(p.Name):
			bad(field+".name", "must be a valid HTTP header name (RFC 9110 token)")
		}
		if len(p.ValueTemplate) > MaxTemplateLen {
			bad(field+".value_template", "must be at most %d bytes", MaxTemplateLen)
			continue
		}
		if strings.ContainsAny(p.ValueTemplate, "\r\n\x00") {
			bad(field+".value_template", "must not contain CR, LF or NUL")
			continue
		}
		if err := checkTemplate(p.ValueTemplate, k.placeholders()); err != "" {
			bad(field+".value_template", "%s", err)
		}
	}
	if d.Type == TypeOAuth2 {
		vs = append(vs, validateOAuth2Config(prefix+".oauth2", d.OAuth2)...)
	} else if d.OAuth2 != nil {
		bad("oauth2", "is only for CREDENTIAL_TYPE_OAUTH2")
	}
	return vs
}

// checkTemplate checks that every {placeholder} is one the type offers and
// that braces balance. It returns what is wrong, or "".
func checkTemplate(t string, allowed []string) string {
	for rest := t; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			return ""
		}
		if rest[open] == '}' {
			return "has a } without a {"
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "has a { without a }"
		}
		name := rest[open+1 : open+end]
		if !slices.Contains(allowed, name) {
			return fmt.Sprintf("uses {%s}, which this type does not offer (it offers {%s})", truncate(name, 32), strings.Join(allowed, "}, {"))
		}
		rest = rest[open+end+1:]
	}
	return ""
}

// ValidateSecret checks a secret against the type. Field paths are prefixed
// with prefix (e.g. "secret").
func ValidateSecret(prefix string, t Type, s Secret) []FieldViolation {
	k, ok := kinds[t]
	if !ok {
		return nil // the type's own violation says it all
	}
	if s.Type() != t {
		return []FieldViolation{{Field: prefix + "." + k.secretField(), Description: "is required for a credential of type " + t.String() + ", and no other kind of secret may be set"}}
	}
	return k.validateSecret(prefix+"."+k.secretField(), s, Definition{Type: t})
}

// EffectivePlacement is d.Placement, or the type's default when empty.
func EffectivePlacement(d Definition) []ParameterTemplate {
	if len(d.Placement) > 0 {
		return d.Placement
	}
	if k, ok := kinds[d.Type]; ok {
		return k.defaultPlacement()
	}
	return nil
}

// Expand expands the effective placement with the secret's values and
// checks every result: no CR, LF or NUL anywhere, and header values valid
// per RFC 9110. Errors name the template, never the value.
func Expand(prefix string, d Definition, s Secret) ([]Parameter, error) {
	k, ok := kinds[d.Type]
	if !ok || s.Type() != d.Type {
		return nil, &ValidationError{Violations: []FieldViolation{{Field: prefix + ".type", Description: "does not match the secret"}}}
	}
	value := func(name string) (string, bool) { return k.value(s, name) }
	placement := EffectivePlacement(d)
	out := make([]Parameter, len(placement))
	var vs []FieldViolation
	for i, p := range placement {
		v, ok := expandTemplate(p.ValueTemplate, value)
		field := func() string { return fmt.Sprintf("%s.placement[%d].value_template", prefix, i) }
		switch {
		case !ok:
			vs = append(vs, FieldViolation{Field: field(), Description: "has a placeholder this type does not offer"})
		case strings.ContainsAny(v, "\r\n\x00"):
			vs = append(vs, FieldViolation{Field: field(), Description: "expands to a value containing CR, LF or NUL (check the secret)"})
		case p.Location == LocationHeader && !httpguts.ValidHeaderFieldValue(v):
			vs = append(vs, FieldViolation{Field: field(), Description: "expands to an invalid HTTP header value (check the secret)"})
		}
		out[i] = Parameter{Location: p.Location, Name: p.Name, Value: v}
	}
	if len(vs) > 0 {
		return nil, &ValidationError{Violations: vs}
	}
	return out, nil
}

// expandTemplate replaces each {name} with value(name) in one pass. A
// template that is one placeholder (the usual "{api_key}") returns the
// value itself, building nothing.
func expandTemplate(t string, value func(string) (string, bool)) (string, bool) {
	open := strings.IndexByte(t, '{')
	if open < 0 {
		return t, true
	}
	if open == 0 && strings.IndexByte(t, '}') == len(t)-1 && strings.IndexByte(t[1:], '{') < 0 {
		return value(t[1 : len(t)-1])
	}
	var b strings.Builder
	b.Grow(len(t) + 64)
	for {
		open := strings.IndexByte(t, '{')
		if open < 0 {
			b.WriteString(t)
			return b.String(), true
		}
		end := strings.IndexByte(t[open:], '}')
		if end < 0 {
			return "", false
		}
		v, ok := value(t[open+1 : open+end])
		if !ok {
			return "", false
		}
		b.WriteString(t[:open])
		b.WriteString(v)
		t = t[open+end+1:]
	}
}
