package server

import (
	"context"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"

	"github.com/embedd/embedd/core"
)

// limitListener accepts at most max connections at once: one over the cap
// is closed as soon as it is accepted, so that idle keep-alive
// connections cannot take every file descriptor (Create and Drop need
// some).
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, max)}
}

// Accept returns the next connection that fits under the cap.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
		default:
			c.Close()
		}
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	release func()
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
