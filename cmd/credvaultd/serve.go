package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/credvault/credvault/server"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/awskms"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
)

type serveConfig struct {
	dataDir, grpcAddr, httpAddr, publicURL string
	keyProvider, kmsKeyID                  string
	tlsCert, tlsKey, clientCA              string
	insecure                               bool
	logLevel, logFormat                    string
	logPayloads                            bool
	pprof                                  bool
	metricsCredentialLabels                bool
	auditFile                              string
	auditCommitInterval                    time.Duration
	oauthSkew, oauthDefaultLifetime        time.Duration
	oauthForceInterval                     time.Duration
	rateLimit                              float64
	rateBurst                              int
	shutdownTimeout                        time.Duration
	gcHeapFloorMiB                         uint64
}

func serveFlags(cfg *serveConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: credvaultd serve [flags]

Runs the vault. With no flags: data in ./data, gRPC on 127.0.0.1:7443, HTTP
(OAuth callback, /healthz) on 127.0.0.1:7444, the local key provider, and an
admin token written to <data-dir>/admin.token on first start.
Every flag is also an environment variable CREDVAULT_<NAME>.

Storage and keys:
  --data-dir DIR          data directory (default ./data)
  --key-provider NAME     local | awskms (default local)
  --kms-key-id ID         AWS KMS key id, ARN or alias (awskms); the endpoint,
                          region and credentials come from the standard AWS
                          configuration (AWS_REGION, AWS_ENDPOINT_URL_KMS, ...)
Network:
  --grpc-addr ADDR        gRPC listen address (default 127.0.0.1:7443)
  --http-addr ADDR        HTTP listen address (default 127.0.0.1:7444)
  --public-url URL        base URL the OAuth provider redirects to
                          (default http://<http-addr>)
  --tls-cert FILE         TLS certificate (PEM) for gRPC and HTTP
  --tls-key FILE          TLS private key (PEM)
  --client-ca FILE        CA bundle for mTLS client certificates
  --insecure              allow a non-loopback listen address without TLS
Logging:
  --log-level LEVEL       debug | info | warn | error (default info)
  --log-format FORMAT     json | text (default json)
  --log-payloads          log every request and response, secrets redacted
  --metrics-credential-labels   also count resolves per credential name in
                          /metrics (one series per credential: bounded fleets)
  --pprof                 serve Go profiles at /debug/pprof/ on the HTTP side
                          (loopback only; for performance work)
OAuth 2.0:
  --oauth-refresh-skew DUR       refresh an access token this long before it
                                 expires, or at half its lifetime if shorter
                                 (default 60s)
  --oauth-default-lifetime DUR   lifetime assumed when a provider omits
                                 expires_in (default 1h)
  --oauth-force-refresh-interval DUR
                                 least time between two refreshes forced by
                                 callers (force_refresh) per credential (10s)
Audit:
  --audit-file FILE       also append every audit event as a JSON line to FILE
                          (for SIEM shipping; the chain in the database is the
                          record of truth)
  --audit-commit-interval DUR
                          least time between two group commits of read and
                          resolve events (default 0: a batch commits as soon
                          as the previous commit ends). A longer interval
                          shares each disk sync among more calls, for more
                          latency; an event after a quiet spell commits at
                          once
Limits:
  --rate-limit N          calls per second allowed to each caller (0: no limit)
  --rate-burst N          burst above --rate-limit (default: one second's worth)
Shutdown:
  --shutdown-timeout DUR  how long in-flight calls may finish (default 30s)
Runtime:
  --gc-heap-floor MIB     let the Go heap grow to about this many MiB before
                          it is collected (default 64; 0: Go's default
                          pacing). Ignored when GOGC is set; at most half
                          of GOMEMLIMIT
`)
	}
	fs.StringVar(&cfg.dataDir, "data-dir", "./data", "")
	fs.StringVar(&cfg.grpcAddr, "grpc-addr", "127.0.0.1:7443", "")
	fs.StringVar(&cfg.httpAddr, "http-addr", "127.0.0.1:7444", "")
	fs.StringVar(&cfg.publicURL, "public-url", "", "")
	fs.StringVar(&cfg.keyProvider, "key-provider", "local", "")
	fs.StringVar(&cfg.kmsKeyID, "kms-key-id", "", "")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "")
	fs.StringVar(&cfg.clientCA, "client-ca", "", "")
	fs.BoolVar(&cfg.insecure, "insecure", false, "")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "")
	fs.StringVar(&cfg.logFormat, "log-format", "json", "")
	fs.BoolVar(&cfg.logPayloads, "log-payloads", false, "")
	fs.BoolVar(&cfg.pprof, "pprof", false, "")
	fs.BoolVar(&cfg.metricsCredentialLabels, "metrics-credential-labels", false, "")
	fs.StringVar(&cfg.auditFile, "audit-file", "", "")
	fs.DurationVar(&cfg.auditCommitInterval, "audit-commit-interval", vault.DefaultAuditCommitInterval, "")
	fs.DurationVar(&cfg.oauthSkew, "oauth-refresh-skew", 60*time.Second, "")
	fs.DurationVar(&cfg.oauthDefaultLifetime, "oauth-default-lifetime", time.Hour, "")
	fs.DurationVar(&cfg.oauthForceInterval, "oauth-force-refresh-interval", 10*time.Second, "")
	fs.Float64Var(&cfg.rateLimit, "rate-limit", 0, "")
	fs.IntVar(&cfg.rateBurst, "rate-burst", 0, "")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 30*time.Second, "")
	fs.Uint64Var(&cfg.gcHeapFloorMiB, "gc-heap-floor", 64, "")
	return fs
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg serveConfig
	if err := parseFlags(serveFlags(&cfg, stderr), args); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	tlsConf, err := loadTLS(cfg)
	if err != nil {
		return err
	}
	if tlsConf == nil && !cfg.insecure {
		for _, addr := range []string{cfg.grpcAddr, cfg.httpAddr} {
			if !isLoopback(addr) {
				return fmt.Errorf("refusing to listen on %s without TLS: give --tls-cert and --tls-key, or --insecure", addr)
			}
		}
	}
	if cfg.gcHeapFloorMiB > maxHeapFloor>>20 {
		return fmt.Errorf("--gc-heap-floor: %d MiB is more than %d", cfg.gcHeapFloorMiB, maxHeapFloor>>20)
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	defer keepHeapGoalAbove(cfg.gcHeapFloorMiB << 20)()

	keys, err := openKeyProvider(ctx, cfg)
	if err != nil {
		return err
	}
	store, err := boltstore.Open(filepath.Join(cfg.dataDir, boltstore.FileName), 5*time.Second)
	if err != nil {
		return err
	}
	defer store.Close()
	sink, closeSink, err := openAuditFile(cfg.auditFile, log)
	if err != nil {
		return err
	}
	defer closeSink()
	metrics := server.NewMetrics(cfg.metricsCredentialLabels)
	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys, Logger: log, AuditSink: sink, TokenObserver: metrics,
		AuditCommitInterval: cfg.auditCommitInterval,
		OAuth:               &vault.OAuthConfig{Skew: cfg.oauthSkew, DefaultLifetime: cfg.oauthDefaultLifetime, ForceRefreshInterval: cfg.oauthForceInterval}})
	if err != nil {
		return err
	}
	tokenPath := filepath.Join(cfg.dataDir, "admin.token")
	if err := bootstrapAdmin(ctx, v, tokenPath, log); err != nil {
		return err
	}

	grpcLis, err := net.Listen("tcp", cfg.grpcAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("HTTP listener: %w", err)
	}
	var grpcOpts []grpc.ServerOption
	if tlsConf != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	publicURL := cfg.publicURL
	if publicURL == "" {
		scheme := "http"
		if tlsConf != nil {
			scheme = "https"
		}
		publicURL = scheme + "://" + httpLis.Addr().String()
	}
	var keyCalls func() map[string]int64
	if c, ok := keys.(interface{ Calls() map[string]int64 }); ok {
		keyCalls = c.Calls
	}
	srv := server.New(server.Config{Vault: v, Logger: log, PublicURL: publicURL, Metrics: metrics, KeyProviderCalls: keyCalls, AuditJournalFailure: store.AuditJournalFailure, LogPayloads: cfg.logPayloads,
		RateLimit: cfg.rateLimit, RateBurst: cfg.rateBurst, GRPCOptions: grpcOpts})

	handler := srv.HTTPHandler()
	if cfg.pprof {
		if !isLoopback(cfg.httpAddr) {
			return errors.New("--pprof is allowed only with a loopback --http-addr")
		}
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		handler = mux
	}
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf}

	errc := make(chan error, 2)
	go func() { errc <- srv.GRPC().Serve(grpcLis) }()
	go func() {
		var err error
		if tlsConf != nil {
			err = httpSrv.ServeTLS(httpLis, "", "")
		} else {
			err = httpSrv.Serve(httpLis)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		// Refreshes cut off by the last stop are retried once, in the
		// background: start-up does not wait for providers.
		if n, err := v.RecoverPendingRefreshes(ctx); err != nil || n > 0 {
			log.Info("retried refreshes cut off by the last stop", "count", n, "error", errString(err))
		}
	}()
	log.Info("credvaultd serving",
		"grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String(),
		"data_dir", cfg.dataDir, "key_provider", v.KeyProviderID(), "tls", tlsConf != nil)

	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight calls", "timeout", cfg.shutdownTimeout.String())
	case err := <-errc:
		log.Error("listener failed; shutting down", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx)
	_ = httpSrv.Shutdown(sctx)
	if err := store.Close(); err != nil {
		return fmt.Errorf("closing database: %w", err)
	}
	log.Info("credvaultd stopped cleanly")
	return nil
}

func openKeyProvider(ctx context.Context, cfg serveConfig) (vault.KeyProvider, error) {
	switch cfg.keyProvider {
	case "local":
		return localkey.Open(filepath.Join(cfg.dataDir, "master.key"))
	case "awskms":
		if cfg.kmsKeyID == "" {
			return nil, errors.New("--key-provider awskms needs --kms-key-id")
		}
		return awskms.New(ctx, cfg.kmsKeyID)
	default:
		return nil, fmt.Errorf("--key-provider must be local or awskms, not %q", cfg.keyProvider)
	}
}

// bootstrapAdmin makes sure there is an admin caller. On first start it
// writes a new token to path (mode 0600, written and synced before the
// caller is stored, so a crash in between leaves a token that the next
// start registers) and says where.
func bootstrapAdmin(ctx context.Context, v *vault.Vault, path string, log *slog.Logger) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw = []byte(vault.NewToken() + "\n")
		if err := writeFileSync(path, raw, 0o600); err != nil {
			return fmt.Errorf("writing admin token: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("reading admin token: %w", err)
	}
	created, err := v.BootstrapAdmin(ctx, strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("creating admin caller: %w", err)
	}
	if created {
		log.Info("created the admin caller; its token is in the admin token file (mode 0600)", "admin_token_file", path)
	}
	return nil
}

// writeFileSync creates path exclusively with perm, writes data and syncs
// the file and its directory.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be json or text, not %q", format)
}

func loadTLS(cfg serveConfig) (*tls.Config, error) {
	if cfg.tlsCert == "" && cfg.tlsKey == "" {
		if cfg.clientCA != "" {
			return nil, errors.New("--client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading TLS key pair: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.clientCA != "" {
		pem, err := os.ReadFile(cfg.clientCA)
		if err != nil {
			return nil, fmt.Errorf("reading --client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca %s holds no PEM certificate", cfg.clientCA)
		}
		// Verified when given; callers may still use bearer tokens.
		conf.ClientCAs, conf.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return conf, nil
}

// isLoopback reports whether a listen address binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openAuditFile returns a sink appending audit events as JSON lines to
// path, or a nil sink when path is empty. A write error is logged, not
// fatal: the database's chain already holds the event.
func openAuditFile(path string, log *slog.Logger) (func(*auditlog.Event), func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-file: %w", err)
	}
	var mu sync.Mutex
	sink := func(e *auditlog.Event) {
		line, err := json.Marshal(e)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.Write(append(line, '\n')); err != nil {
			log.Error("writing the audit file", "path", path, "error", err.Error())
		}
	}
	return sink, func() { f.Close() }, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
