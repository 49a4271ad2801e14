package server

import (
	"context"
	"sync"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callerLimiter is a token bucket per caller, for go-grpc-middleware's
// ratelimit interceptor. It runs after authentication, so a flood of calls
// with bad tokens is not charged to anyone (those are cheap to refuse).
type callerLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex // guards buckets
	buckets map[string]*rate.Limiter
}

func newCallerLimiter(perSecond float64, burst int) *callerLimiter {
	if burst < 1 {
		burst = max(1, int(perSecond))
	}
	return &callerLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Limit implements ratelimit.Limiter.
func (l *callerLimiter) Limit(ctx context.Context) error {
	name := callerName(ctx)
	l.mu.Lock()
	b, ok := l.buckets[name]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[name] = b
	}
	l.mu.Unlock()
	if !b.Allow() {
		return status.Error(codes.ResourceExhausted, "rate limit exceeded for "+name+"; slow down and retry")
	}
	return nil
}
