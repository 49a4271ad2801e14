package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// payloadLogger adapts slog to go-grpc-middleware's logging interceptor.
// Payloads (the middleware passes them as proto.Message values) are logged
// only through Redact; nothing here calls String() or %v on a message.
func payloadLogger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if !log.Enabled(ctx, slog.Level(lvl)) {
			return // a successful call at the default level: build nothing
		}
		attrs := callAttrs(ctx, len(fields)/2+2)
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			switch v := fields[i+1].(type) {
			case proto.Message:
				attrs = append(attrs, slog.String(key, redactedJSON(v)))
			case string:
				attrs = append(attrs, slog.String(key, v))
			case error:
				attrs = append(attrs, errorAttr(key, v))
			default:
				attrs = append(attrs, slog.Any(key, v))
			}
		}
		log.LogAttrs(ctx, slog.Level(lvl), msg, attrs...)
	})
}

// logCalls logs each finished call, as go-grpc-middleware's interceptor does
// but without building anything for a line the logger would drop: at the
// default level that is every successful call, and the middleware's fields
// cost more than a resolve. With payload logging on, the middleware's
// interceptor (which logs the redacted payloads) is used instead.
func (s *Server) logCalls(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	code := status.Code(err)
	level := slog.Level(callLevel(code))
	if !s.log.Enabled(ctx, level) {
		return resp, err
	}
	service, method, _ := strings.Cut(strings.TrimPrefix(si.FullMethod, "/"), "/")
	attrs := callAttrs(ctx, 10)
	attrs = append(attrs, slog.String("protocol", "grpc"), slog.String("grpc.component", "server"),
		slog.String("grpc.service", service), slog.String("grpc.method", method), slog.String("grpc.method_type", "unary"))
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer.address", p.Addr.String()))
	}
	attrs = append(attrs, slog.String("grpc.code", code.String()))
	if err != nil {
		attrs = append(attrs, errorAttr("grpc.error", err))
	}
	attrs = append(attrs, slog.String("grpc.time_ms", strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 3, 64)))
	s.log.LogAttrs(ctx, level, "finished call", attrs...)
	return resp, err
}

// callAttrs starts a finished call's log fields (room for n): the request
// id, and the caller once authenticated. Both loggers start with it.
func callAttrs(ctx context.Context, n int) []slog.Attr {
	attrs := make([]slog.Attr, 0, n)
	attrs = append(attrs, slog.String("request_id", requestID(ctx)))
	if c := callerName(ctx); c != "" {
		attrs = append(attrs, slog.String("caller", c))
	}
	return attrs
}

// errorAttr logs a call's error. Errors reaching a logger are statuses
// built by toStatus or the interceptors: fixed texts and names, never
// values (the canary tests check it in both logging modes).
func errorAttr(key string, err error) slog.Attr { return slog.String(key, err.Error()) }

// payloadLoggingOptions log each finished call with its redacted request
// and response (--log-payloads). A successful call is logged at debug
// level: the audit log already records every call durably. Failures are
// logged at info (client errors) or above (server errors).
func payloadLoggingOptions() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall, logging.PayloadReceived, logging.PayloadSent),
		logging.WithLevels(callLevel),
	}
}

func callLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK:
		return logging.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return logging.LevelError
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return logging.LevelWarn
	}
	return logging.LevelInfo
}

// recoverPanic turns a handler panic into INTERNAL with a fixed message.
// The panic value may hold anything, secrets included, so only its type and
// the stack are logged (the middleware's default PanicError would send both
// to the caller).
func (s *Server) recoverPanic(ctx context.Context, p any) error {
	s.log.ErrorContext(ctx, "panic in handler", "request_id", requestID(ctx), "panic_type", fmt.Sprintf("%T", p), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error (request id "+requestID(ctx)+")")
}
