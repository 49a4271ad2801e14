package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
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
		attrs := make([]slog.Attr, 0, len(fields)/2+2)
		attrs = append(attrs, slog.String("request_id", requestID(ctx)))
		if c := callerName(ctx); c != "" {
			attrs = append(attrs, slog.String("caller", c))
		}
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			switch v := fields[i+1].(type) {
			case proto.Message:
				attrs = append(attrs, slog.String(key, redactedJSON(v)))
			case string:
				attrs = append(attrs, slog.String(key, v))
			case error:
				// Errors reaching here are statuses built by toStatus or the
				// interceptors: fixed texts and names, never values.
				attrs = append(attrs, slog.String(key, v.Error()))
			default:
				attrs = append(attrs, slog.Any(key, v))
			}
		}
		log.LogAttrs(ctx, slog.Level(lvl), msg, attrs...)
	})
}

// loggingOptions logs each finished call; with payloads, the redacted
// request and response too. A successful call is logged at debug level:
// the audit log already records every call durably, and an info line per
// resolve would cost more than the resolve. Failures are logged at info
// (client errors) or above (server errors).
func loggingOptions(payloads bool) []logging.Option {
	events := []logging.LoggableEvent{logging.FinishCall}
	if payloads {
		events = append(events, logging.PayloadReceived, logging.PayloadSent)
	}
	return []logging.Option{logging.WithLogOnEvents(events...), logging.WithLevels(callLevel)}
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
