package vault

import (
	"sync/atomic"
	"time"
)

// Stats are the vault's counters, for the metrics endpoint. Reading them
// costs nothing on the hot path: they are atomics the vault bumps anyway.
type Stats struct {
	DataKeyCacheHits   int64
	DataKeyCacheMisses int64
	TokenRequests      int64
	TokenFailures      int64
	AuditEvents        int64
	// AuditCommits counts group commits of read/resolve events; events per
	// commit is the group commit's batching.
	AuditCommits int64
	// AuditCommitTime is the time spent in those commits (their store
	// appends with their disk sync): divided by AuditCommits, the mean
	// a resolve waits for once its batch commits.
	AuditCommitTime time.Duration
}

// counters are the live Stats.
type counters struct {
	dekHits, dekMisses, tokenRequests, tokenFailures, auditEvents, auditCommits atomic.Int64
	auditCommitNanos                                                            atomic.Int64
}

// Stats returns a snapshot of the counters.
func (v *Vault) Stats() Stats {
	c := &v.counters
	return Stats{DataKeyCacheHits: c.dekHits.Load(), DataKeyCacheMisses: c.dekMisses.Load(),
		TokenRequests: c.tokenRequests.Load(), TokenFailures: c.tokenFailures.Load(), AuditEvents: c.auditEvents.Load(), AuditCommits: c.auditCommits.Load(),
		AuditCommitTime: time.Duration(c.auditCommitNanos.Load())}
}

// TokenObserver is told how long each token-endpoint exchange took
// (metrics). Implementations must be safe for concurrent use and fast.
type TokenObserver interface {
	ObserveTokenRequest(grant string, d time.Duration, ok bool)
}

func (v *Vault) observeToken(grant string, start time.Time, err error) {
	v.counters.tokenRequests.Add(1)
	if err != nil {
		v.counters.tokenFailures.Add(1)
	}
	if v.tokenObserver != nil {
		v.tokenObserver.ObserveTokenRequest(grant, v.clock.Now().Sub(start), err == nil)
	}
}
