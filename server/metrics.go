package server

import (
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/credvault/credvault/vault"
)

// Metrics is credvault's Prometheus registry: per-RPC counters and latency
// histograms (go-grpc-middleware's provider), resolves by credential type
// and outcome, token-endpoint latency, key-provider calls, data-key cache
// hits and misses, audit events. No label ever holds a secret, and
// credential names are not labels (unbounded cardinality).
type Metrics struct {
	reg       *prometheus.Registry
	grpc      *grpcprom.ServerMetrics
	resolves  *prometheus.CounterVec
	tokenTime *prometheus.HistogramVec
	// byCredential, when not nil, counts resolves per credential name: only
	// behind --metrics-credential-labels, since names are unbounded.
	byCredential *prometheus.CounterVec
}

var _ vault.TokenObserver = (*Metrics)(nil)

// NewMetrics builds the registry. credentialLabels adds
// credvault_credential_resolves_total{credential}, one series per
// credential: use it only where the number of credentials is bounded.
func NewMetrics(credentialLabels ...bool) *Metrics {
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "credvault_resolves_total",
			Help: "ResolveCredential calls by credential type and gRPC code."}, []string{"type", "code"}),
		tokenTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "credvault_token_request_seconds",
			Help:    "Token endpoint exchanges (refreshes, client credentials) by grant and result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}, []string{"grant", "ok"}),
	}
	m.reg.MustRegister(m.grpc, m.resolves, m.tokenTime, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if len(credentialLabels) > 0 && credentialLabels[0] {
		m.byCredential = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "credvault_credential_resolves_total",
			Help: "ResolveCredential calls by credential name and gRPC code."}, []string{"credential", "code"})
		m.reg.MustRegister(m.byCredential)
	}
	return m
}

// ObserveTokenRequest implements vault.TokenObserver.
func (m *Metrics) ObserveTokenRequest(grant string, d time.Duration, ok bool) {
	okLabel := "false"
	if ok {
		okLabel = "true"
	}
	m.tokenTime.WithLabelValues(grant, okLabel).Observe(d.Seconds())
}

// watch registers counters that read the vault's and the key provider's
// own counts when scraped, and the store's audit journal state.
func (m *Metrics) watch(v *vault.Vault, keyCalls func() map[string]int64, journalFailure func() error) {
	stat := func(name, help string, f func(vault.Stats) float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return f(v.Stats()) }))
	}
	stat("credvault_data_key_cache_hits_total", "Data keys served from memory.", func(s vault.Stats) float64 { return float64(s.DataKeyCacheHits) })
	stat("credvault_data_key_cache_misses_total", "Data keys unwrapped by the key provider.", func(s vault.Stats) float64 { return float64(s.DataKeyCacheMisses) })
	stat("credvault_token_requests_total", "Token endpoint exchanges.", func(s vault.Stats) float64 { return float64(s.TokenRequests) })
	stat("credvault_token_request_failures_total", "Failed token endpoint exchanges.", func(s vault.Stats) float64 { return float64(s.TokenFailures) })
	stat("credvault_audit_events_total", "Audit events made durable.", func(s vault.Stats) float64 { return float64(s.AuditEvents) })
	stat("credvault_audit_group_commits_total", "Group commits of read and resolve events (events per commit = batching).", func(s vault.Stats) float64 { return float64(s.AuditCommits) })
	stat("credvault_audit_group_commit_seconds_total", "Time spent in group commits of read and resolve events (/ commits = mean commit latency).",
		func(s vault.Stats) float64 { return s.AuditCommitTime.Seconds() })
	if journalFailure != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "credvault_audit_journal_failed",
			Help: "1 when the audit journal failed and every group commit goes to the database with two disk syncs; 0 while it works."},
			func() float64 {
				if journalFailure() != nil {
					return 1
				}
				return 0
			}))
	}
	if keyCalls != nil {
		for _, op := range []string{"GenerateDataKey", "Decrypt", "ReEncrypt", "errors"} {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "credvault_key_provider_calls_total",
				Help: "Key provider (KMS) calls by operation; op=errors counts failures.", ConstLabels: prometheus.Labels{"op": op}},
				func() float64 { return float64(keyCalls()[op]) }))
		}
	}
}

func (m *Metrics) countResolve(name, typ string, code codes.Code) {
	m.resolves.WithLabelValues(typ, code.String()).Inc()
	if m.byCredential != nil && code != codes.InvalidArgument {
		m.byCredential.WithLabelValues(name, code.String()).Inc()
	}
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
