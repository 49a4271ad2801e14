package vault

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/credvault/credvault/authtypes"
)

// Limits on what a credential definition may hold. They bound the size of a
// record so that one admin mistake cannot make every resolve slow.
const (
	MaxDisplayNameLen   = 256
	MaxDescriptionLen   = 4096
	MaxLabels           = 64
	MaxLabelKeyLen      = 63
	MaxLabelValueLen    = 256
	MaxAllowedCallers   = 256
	MaxAllowedHosts     = 64
	maxHostPatternBytes = 253
)

var (
	// idPattern is the credential_id and caller_id syntax of DESIGN.md.
	idPattern       = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	labelKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)
)

// ValidID reports whether id is a valid credential_id or caller_id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// CredentialName returns credentials/{id}.
func CredentialName(id string) string { return "credentials/" + id }

// CallerName returns callers/{id}.
func CallerName(id string) string { return "callers/" + id }

// ParseCredentialName returns the id of credentials/{id}, or false.
func ParseCredentialName(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, "credentials/")
	return id, ok && ValidID(id)
}

// ParseCallerName returns the id of callers/{id}, or false.
func ParseCallerName(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, "callers/")
	return id, ok && ValidID(id)
}

// validateMetadata checks the fields of a credential that authtypes does not
// know about. Field paths are prefixed with prefix ("credential").
func validateMetadata(prefix string, c *Credential) []authtypes.FieldViolation {
	var vs []authtypes.FieldViolation
	bad := func(field, format string, args ...any) {
		vs = append(vs, authtypes.FieldViolation{Field: prefix + "." + field, Description: fmt.Sprintf(format, args...)})
	}
	checkText := func(field, s string, max int) {
		switch {
		case len(s) > max:
			bad(field, "must be at most %d bytes", max)
		case !utf8.ValidString(s):
			bad(field, "must be valid UTF-8")
		case strings.ContainsAny(s, "\x00"):
			bad(field, "must not contain NUL")
		}
	}
	checkText("display_name", c.DisplayName, MaxDisplayNameLen)
	checkText("description", c.Description, MaxDescriptionLen)
	if len(c.Labels) > MaxLabels {
		bad("labels", "at most %d labels", MaxLabels)
	}
	for k, v := range c.Labels {
		if !labelKeyPattern.MatchString(k) {
			bad("labels", "key %q must match %s", truncate(k, 64), labelKeyPattern)
			continue
		}
		checkText("labels["+k+"]", v, MaxLabelValueLen)
	}
	if len(c.AllowedCallers) > MaxAllowedCallers {
		bad("allowed_callers", "at most %d callers", MaxAllowedCallers)
	}
	seen := map[string]bool{}
	for i, name := range c.AllowedCallers {
		field := fmt.Sprintf("allowed_callers[%d]", i)
		if _, ok := ParseCallerName(name); !ok {
			bad(field, "must be callers/{caller_id} with caller_id matching %s", idPattern)
		} else if seen[name] {
			bad(field, "duplicate caller")
		}
		seen[name] = true
	}
	if len(c.AllowedHosts) > MaxAllowedHosts {
		bad("allowed_hosts", "at most %d hosts", MaxAllowedHosts)
	}
	for i, h := range c.AllowedHosts {
		if err := validHostPattern(h); err != "" {
			bad(fmt.Sprintf("allowed_hosts[%d]", i), "%s", err)
		}
	}
	return vs
}

// validHostPattern checks an allowed_hosts entry: a DNS name or IP address,
// or *.domain for its subdomains. It returns what is wrong, or "".
func validHostPattern(p string) string {
	if p == "" || len(p) > maxHostPatternBytes {
		return "must be a host name of 1 to 253 bytes"
	}
	if net.ParseIP(p) != nil {
		return ""
	}
	name := strings.TrimPrefix(p, "*.")
	if strings.Contains(name, "*") {
		return "a wildcard is allowed only as a leading *. label"
	}
	if !strings.Contains(name, ".") && p != name {
		return "*. must be followed by a domain with at least two labels"
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "labels must be 1 to 63 characters"
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "must be lower-case letters, digits, hyphens and dots"
			}
		}
	}
	return ""
}

// hostAllowed reports whether host matches one of the patterns: exactly, or
// as a subdomain of a *.domain pattern (which does not match the domain
// itself, as in TLS certificates).
func hostAllowed(host string, patterns []string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range patterns {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
