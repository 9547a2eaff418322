package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/embedd/embedd/core"
)

// limitListener accepts at most max connections at once, so that
// keep-alive connections cannot take every file descriptor (Create and
// Drop need some). At the cap a new connection takes the place of the
// connection idle longest (an HTTP keep-alive connection between requests,
// as ConnState reports them), so a flood of idle connections cannot lock
// out new clients, and the probes of /healthz and /readyz still get in;
// with no connection idle, the new one is closed as soon as it is
// accepted.
type limitListener struct {
	net.Listener
	slots chan struct{}
	mu    sync.Mutex
	idle  map[*limitConn]time.Time // connections between requests, since when
}

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, max), idle: map[*limitConn]time.Time{}}
}

// Accept returns the next connection that fits under the cap.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit() {
			lc := &limitConn{Conn: c}
			lc.release = sync.OnceFunc(func() {
				l.mu.Lock()
				lc.closed = true
				delete(l.idle, lc)
				l.mu.Unlock()
				<-l.slots
			})
			return lc, nil
		}
		c.Close()
	}
}

// admit takes a slot, closing the connection idle longest for one if none
// is free.
func (l *limitListener) admit() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	l.mu.Lock()
	var oldest *limitConn
	for c, since := range l.idle {
		if oldest == nil || since.Before(l.idle[oldest]) {
			oldest = c
		}
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close() // gives its slot back
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// connState is the HTTP server's ConnState hook: it keeps the set of idle
// connections.
func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // a TLS connection over one of ours
	}
	if lc, ok := c.(*limitConn); ok {
		l.setIdle(lc, st == http.StateIdle)
	}
}

func (l *limitListener) setIdle(c *limitConn, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case idle && !c.closed:
		l.idle[c] = time.Now()
	case !idle:
		delete(l.idle, c)
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	release func()
	closed  bool // guarded by the listener's mu
}

func (c *limitConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// admit holds one of the MaxGRPCCalls slots for a call (health checks
// excepted), or refuses it with RESOURCE_EXHAUSTED when all are taken; the
// caller runs release when the call ends.
func (s *Server) admit(method string) (release func(), err error) {
	if strings.HasPrefix(method, healthMethodPrefix) {
		return func() {}, nil
	}
	select {
	case s.calls <- struct{}{}:
		return func() { <-s.calls }, nil
	default:
		return nil, grpcError(core.Errorf(core.Overloaded, "", "the server is running its limit of %d calls and streams (max_grpc_calls): retry later", cap(s.calls)))
	}
}

func (s *Server) admitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	release, err := s.admit(info.FullMethod)
	if err != nil {
		return nil, err
	}
	defer release()
	return h(ctx, req)
}

func (s *Server) admitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	release, err := s.admit(info.FullMethod)
	if err != nil {
		return err
	}
	defer release()
	return h(srv, ss)
}
