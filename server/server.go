// Package server is credvault's gRPC and HTTP front: handlers that convert
// between the API and the domain, the interceptors every call passes
// (request id, logging with redaction, panic recovery, authentication,
// authorisation), the one error-to-status map, and the HTTP side.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// DefaultMaxRecvMsgSize bounds a request. The largest valid credential
// (limits in vault and authtypes) is well under it; a larger message is
// RESOURCE_EXHAUSTED before any handler runs.
const DefaultMaxRecvMsgSize = 512 << 10

// Config configures a Server.
type Config struct {
	Vault  *vault.Vault
	Logger *slog.Logger
	// LogPayloads logs every request and response, redacted.
	LogPayloads bool
	// RateLimit is each caller's sustained calls per second (0: no limit);
	// RateBurst the bucket size (default: one second's worth).
	RateLimit float64
	RateBurst int
	// MaxRecvMsgSize defaults to DefaultMaxRecvMsgSize.
	MaxRecvMsgSize int
	// PublicURL is the base URL the OAuth provider redirects to; the
	// callback is PublicURL + /oauth/callback.
	PublicURL string
	// Metrics is the Prometheus registry served at /metrics (NewMetrics);
	// nil makes one. Give the same one to vault.Config.TokenObserver.
	Metrics *Metrics
	// KeyProviderCalls, when set, reports the key provider's call counts.
	KeyProviderCalls func() map[string]int64
	// AuditJournalFailure, when set, reports why the store's audit journal
	// stopped (nil while it works), for the metrics.
	AuditJournalFailure func() error
	// GRPCOptions are added to the server's options (TLS credentials).
	GRPCOptions []grpc.ServerOption
}

// Server is the gRPC server with credvault's services registered, and its
// HTTP side.
type Server struct {
	metrics   *Metrics
	vault     *vault.Vault
	publicURL string
	log       *slog.Logger
	grpc      *grpc.Server
	health    *health.Server
}

// New builds the server. Serve it with GRPC().Serve(listener).
func New(cfg Config) *Server {
	s := &Server{vault: cfg.Vault, publicURL: cfg.PublicURL, log: cfg.Logger, health: health.NewServer()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.metrics = cfg.Metrics
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.metrics.watch(cfg.Vault, cfg.KeyProviderCalls, cfg.AuditJournalFailure)
	maxRecv := cfg.MaxRecvMsgSize
	if maxRecv <= 0 {
		maxRecv = DefaultMaxRecvMsgSize
	}
	logCalls := s.logCalls
	if cfg.LogPayloads {
		logCalls = logging.UnaryServerInterceptor(payloadLogger(s.log), payloadLoggingOptions()...)
	}
	// Order matters: the first interceptor is the outermost.
	unary := []grpc.UnaryServerInterceptor{
		withCallInfo,
		s.metrics.grpc.UnaryServerInterceptor(),
		logCalls,
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(s.recoverPanic)),
		selector.UnaryServerInterceptor(s.auditUnary, selector.MatchFunc(needsCaller)),
		selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(s.authenticate), selector.MatchFunc(needsCaller)),
		selector.UnaryServerInterceptor(s.authorizeUnary, selector.MatchFunc(needsCaller)),
	}
	if cfg.RateLimit > 0 {
		limiter := newCallerLimiter(cfg.RateLimit, cfg.RateBurst)
		unary = append(unary, selector.UnaryServerInterceptor(ratelimit.UnaryServerInterceptor(limiter), selector.MatchFunc(needsCaller)))
	}
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		// Reused workers keep their grown stacks (a fresh goroutine per call
		// spends more time growing its stack than the resolve takes); calls
		// waiting for an audit group commit hold one each, hence many.
		grpc.NumStreamWorkers(uint32(64 * runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(unary...),
		// Streams are only reflection's; they need no caller but must not
		// panic the process.
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(s.recoverPanic))),
	}, cfg.GRPCOptions...)
	s.grpc = grpc.NewServer(opts...)

	credvaultv1.RegisterCredentialServiceServer(s.grpc, &credentialService{s: s})
	credvaultv1.RegisterResolverServiceServer(s.grpc, &resolverService{s: s})
	credvaultv1.RegisterCallerServiceServer(s.grpc, &callerService{s: s})
	credvaultv1.RegisterAuditServiceServer(s.grpc, &auditService{s: s})
	credvaultv1.RegisterAuthorizationServiceServer(s.grpc, &authorizationService{s: s})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.metrics.grpc.InitializeMetrics(s.grpc)
	return s
}

// GRPC returns the gRPC server.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Shutdown reports NOT_SERVING to health checks, then stops accepting calls
// and waits for in-flight ones to finish, or for ctx to end (then it cuts
// them off).
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// status maps a domain error to the status the client sees.
func (s *Server) status(ctx context.Context, err error) error {
	return toStatus(ctx, s.log, err)
}

// HTTPHandler serves the HTTP side: the OAuth callback, /healthz (the
// process is up), /readyz (the database and the key provider answer) and
// /metrics.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+CallbackPath, s.handleCallback)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET "+BackupPath, s.handleBackup)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.vault.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
