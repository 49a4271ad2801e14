package vault

import (
	"context"
	"io"
	"time"

	"github.com/credvault/credvault/vault/auditlog"
)

// Store keeps records durably. Every write is one all-or-nothing transaction
// that is on disk before the method returns ("anything acknowledged is
// durable"). Implementations never make network calls while holding their
// write lock, and must be safe for concurrent use.
//
// Records returned are the caller's own copies.
type Store interface {
	// GetCredential returns the credential named name, or an error wrapping
	// ErrNotFound.
	GetCredential(ctx context.Context, name string) (*Credential, error)

	// ListCredentials returns up to limit credentials whose names sort after
	// after, in name order.
	ListCredentials(ctx context.Context, after string, limit int) ([]*Credential, error)

	// PendingRefreshes returns the names of the credentials stored with
	// Secret.RefreshPending set, without reading any other record: start-up
	// looks for refreshes a stop cut off, and must not scan a million
	// credentials to find none.
	PendingRefreshes(ctx context.Context) ([]string, error)

	// PutCredential writes c if cond holds, else returns an error wrapping
	// ErrAlreadyExists, ErrNotFound or ErrEtagMismatch. When ev is not nil
	// it is appended to the audit chain in the same transaction: the change
	// and its audit event are durable together or not at all.
	PutCredential(ctx context.Context, c *Credential, cond Condition, ev *auditlog.Event) error

	// DeleteCredential removes the credential named name if cond holds, and
	// appends ev (if not nil) in the same transaction.
	DeleteCredential(ctx context.Context, name string, cond Condition, ev *auditlog.Event) error

	// GetCaller returns the caller named name, or an error wrapping ErrNotFound.
	GetCaller(ctx context.Context, name string) (*Caller, error)

	// CallerByTokenHash returns the caller whose current token hashes to
	// hash, or an error wrapping ErrNotFound.
	CallerByTokenHash(ctx context.Context, hash []byte) (*Caller, error)

	// CallerByMTLSIdentity returns the caller whose mTLS identity (a client
	// certificate's URI or DNS SAN) is id, or an error wrapping ErrNotFound.
	CallerByMTLSIdentity(ctx context.Context, id string) (*Caller, error)

	// ListCallers returns up to limit callers whose names sort after after.
	ListCallers(ctx context.Context, after string, limit int) ([]*Caller, error)

	// PutCaller writes c (and its token-hash index entry, replacing the old
	// one) if cond holds.
	PutCaller(ctx context.Context, c *Caller, cond Condition, ev *auditlog.Event) error

	// DeleteCaller removes a caller and its token-hash index entry.
	DeleteCaller(ctx context.Context, name string, ev *auditlog.Event) error

	// PutSession stores a pending authorization, with its audit event.
	PutSession(ctx context.Context, s *AuthSession, ev *auditlog.Event) error

	// TakeSession removes and returns a pending authorization in one
	// transaction (so it can be used once), appending ev; ErrNotFound if
	// it is gone.
	TakeSession(ctx context.Context, id string, ev *auditlog.Event) (*AuthSession, error)

	// AppendAudit links events to the end of the audit chain (setting their
	// Sequence, PrevHash and Hash) and stores them in one transaction.
	AppendAudit(ctx context.Context, events []*auditlog.Event) error

	// ListAudit returns up to limit events with sequence above after, in
	// order, that match (nil matches all), scanning at most maxScan events.
	// It also returns the last sequence scanned.
	ListAudit(ctx context.Context, after int64, limit, maxScan int, match func(*auditlog.Event) bool) ([]*auditlog.Event, int64, error)

	// VerifyAudit walks the whole chain with an auditlog.Verifier.
	VerifyAudit(ctx context.Context) (ok bool, checked, firstBad int64, err error)

	// Meta returns the value stored under key, or nil when there is none.
	Meta(ctx context.Context, key string) ([]byte, error)

	// PutMeta stores value under key (nil deletes it).
	PutMeta(ctx context.Context, key string, value []byte) error

	// InitMeta stores value under key unless a value is already there, and
	// returns the value that is stored afterwards. It lets two processes
	// racing on first start agree on one value.
	InitMeta(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Condition is the precondition of a write, checked inside the write
// transaction.
type Condition struct {
	// MustNotExist makes the write a create: ErrAlreadyExists if the record
	// is there.
	MustNotExist bool
	// Revision, when not zero, is the revision the stored record must have:
	// ErrNotFound if it is gone, ErrEtagMismatch if it changed.
	Revision int64
}

// Clock tells the time. Tests inject a fake instead of patching a package
// variable, so they can run in parallel.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// BulkStore is implemented by stores that can write many new credentials in
// few transactions (the offline loader of benchmarks and bulk imports).
type BulkStore interface {
	// PutCredentialsBulk creates every credential (none may exist) and
	// appends ev, all in one transaction.
	PutCredentialsBulk(ctx context.Context, cs []*Credential, ev *auditlog.Event) error
}

// BackupStore is implemented by stores that can stream a consistent
// snapshot of everything they hold while serving.
type BackupStore interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}
