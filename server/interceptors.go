package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/core"
)

// requestID returns the caller's x-request-id, or a new random one.
func requestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
			return v[0]
		}
	}
	return newID()
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observe logs and counts one finished call.
func (s *Server) observe(ctx context.Context, method, id string, start time.Time, err error) {
	code := status.Code(err)
	d := time.Since(start)
	s.metrics.requests.WithLabelValues(method, code.String()).Inc()
	s.metrics.latency.WithLabelValues(method).Observe(d.Seconds())
	level := slog.LevelInfo
	switch code {
	case codes.OK:
		level = slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	}
	attrs := []any{"method", method, "code", code.String(), "latency", d, "request_id", id, "peer", peerAddr(ctx)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		attrs = append(attrs, "trace_id", sc.TraceID().String())
	}
	if err != nil {
		attrs = append(attrs, "err", status.Convert(err).Message())
	}
	s.log.Log(ctx, level, "embedd: rpc", attrs...)
}

// observeUnary gives each call a request id, a log line, metrics and,
// when tracing is on, a server span (see tracing.go).
func (s *Server) observeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start, id := time.Now(), requestID(ctx)
	grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	ctx, span := s.startRPCSpan(ctx, info.FullMethod, id, start)
	resp, err := h(ctx, req)
	s.observe(ctx, info.FullMethod, id, start, err)
	endRPCSpan(span, err)
	return resp, err
}

// observeStream is observeUnary for streams.
func (s *Server) observeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start, id := time.Now(), requestID(ss.Context())
	ss.SetHeader(metadata.Pairs("x-request-id", id))
	ctx, span := s.startRPCSpan(ss.Context(), info.FullMethod, id, start)
	if span != nil {
		ss = &tracedStream{ServerStream: ss, ctx: ctx}
	}
	err := h(srv, ss)
	s.observe(ctx, info.FullMethod, id, start, err)
	endRPCSpan(span, err)
	return err
}

// recoverUnary turns a handler's panic into INTERNAL and logs its stack;
// the server keeps serving.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("embedd: panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error (logged on the server)")
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("embedd: panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error (logged on the server)")
			}
		}()
		return h(srv, ss)
	}
}

// healthMethodPrefix marks calls that need no API key (load balancers).
const healthMethodPrefix = "/grpc.health.v1.Health/"

// bearer extracts the token of an "authorization: Bearer TOKEN" value.
func bearer(v string) string {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// keyOK compares token against every configured key in constant time.
func (s *Server) keyOK(token string) bool {
	ok := 0
	for _, k := range s.cfg.APIKeys {
		ok |= subtle.ConstantTimeCompare([]byte(token), []byte(k))
	}
	return ok == 1
}

func (s *Server) checkAuth(ctx context.Context, method string) error {
	if len(s.cfg.APIKeys) == 0 || strings.HasPrefix(method, healthMethodPrefix) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if s.keyOK(bearer(v)) {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong API key: send metadata \"authorization: Bearer <key>\"")
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.checkAuth(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.checkAuth(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// rateKey is who a rate limit applies to: a configured API key among
// tokens (the bearer tokens a call sent), else the peer's host. A token that
// is not a configured key identifies nobody: were it the identity, a fresh
// token per call would escape the limit.
func (s *Server) rateKey(tokens []string, peer string) string {
	for _, t := range tokens {
		if t != "" && s.keyOK(t) {
			return "key:" + t
		}
	}
	return "peer:" + peerHost(peer)
}

// grpcRateKey is rateKey for a gRPC call.
func (s *Server) grpcRateKey(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	var tokens []string
	for _, v := range md.Get("authorization") {
		tokens = append(tokens, bearer(v))
	}
	return s.rateKey(tokens, peerAddr(ctx))
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

func peerHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// rateLimited returns RESOURCE_EXHAUSTED with a RetryInfo when the client
// is over its rate.
func (s *Server) rateLimited(key, method string) error {
	if s.limiter == nil || strings.HasPrefix(method, healthMethodPrefix) {
		return nil
	}
	ok, retry := s.limiter.Allow(key, 1)
	if ok {
		return nil
	}
	e := core.Errorf(core.Overloaded, "", "rate limit of %g requests/s exceeded; retry after %v", s.cfg.RateLimit, retry)
	e.RetryAfter = retry
	return e
}

func (s *Server) rateUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.rateLimited(s.grpcRateKey(ctx), info.FullMethod); err != nil {
		return nil, grpcError(err)
	}
	return h(ctx, req)
}

func (s *Server) rateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.rateLimited(s.grpcRateKey(ss.Context()), info.FullMethod); err != nil {
		return grpcError(err)
	}
	return h(srv, ss)
}
