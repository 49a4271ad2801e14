package vault

import "errors"

// Sentinel errors of the domain. Adapters and the vault wrap them with
// context (fmt.Errorf("...: %w", err)); server/status.go is the one place that
// maps them to gRPC status codes. Their text never contains secret material.
var (
	// ErrNotFound means the credential (or caller) does not exist.
	ErrNotFound = errors.New("not found")

	// ErrAlreadyExists means a create named an id that is taken.
	ErrAlreadyExists = errors.New("already exists")

	// ErrEtagMismatch means a conditional write saw a different etag than the
	// caller sent: someone else changed the resource in between (AIP-154).
	ErrEtagMismatch = errors.New("etag mismatch")

	// ErrKeyUnavailable means the key provider could not be reached or
	// answered with a transient failure (network, throttling after retries).
	// Retrying the call later may succeed.
	ErrKeyUnavailable = errors.New("key provider unavailable")

	// ErrKeyRejected means the key provider refused the operation for a
	// reason retrying will not fix: a wrapped key that fails to authenticate
	// (tampered, moved to another record, wrong encryption context), a
	// disabled or deleted key, or a key id that does not exist.
	ErrKeyRejected = errors.New("key provider rejected the key")

	// ErrCorrupt means stored bytes failed to decode or authenticate.
	ErrCorrupt = errors.New("stored data is corrupt")

	// ErrHostNotAllowed means the target URL of a resolve is missing or names a
	// host outside the credential's allowed_hosts.
	ErrHostNotAllowed = errors.New("target host not allowed")

	// ErrAuthorizationRequired means an OAuth 2.0 credential has no usable
	// token and no way to get one without a human: authorise it again.
	ErrAuthorizationRequired = errors.New("authorization required")

	// ErrRefreshFailed means obtaining an OAuth 2.0 token failed for a reason
	// that may pass (network, provider 5xx).
	ErrRefreshFailed = errors.New("token refresh failed")
)

// ErrPermissionDenied means the caller may not act on the resource, or the
// resource does not exist: the two are not told apart, so that a caller
// cannot learn which credentials exist.
var ErrPermissionDenied = errors.New("permission denied")

// ErrClientRejected means the provider refused the OAuth client itself
// (invalid_client, unauthorized_client...): the client id or secret is
// wrong. Re-authorizing does not help; rotating the client secret does.
var ErrClientRejected = errors.New("oauth client rejected by the provider")

// ErrTokenResponseMalformed means the provider answered something that is
// not a token response.
var ErrTokenResponseMalformed = errors.New("malformed token response")
