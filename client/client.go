// Package client is the Go client of embedd's gRPC API: the embedding
// service (Embed, EmbedStream for bulk work, Tokenize, ListModels), thin
// wrappers of the index service, and the standard gRPC health check.
//
// Dial sets up one connection for all of them. Unary calls go through an
// interceptor that applies a default timeout (WithTimeout) and retries
// transient failures with exponential backoff and jitter, honouring the
// server's retry hints and the call's deadline (RetryPolicy). Errors keep
// their gRPC status: status.Code(err) tells what went wrong.
//
// A "dns:///host:port" target balances calls round-robin over every address
// of the name (the pods of a Kubernetes headless Service). Shards (see
// DialShards) is a collection split over several servers by ShardOf, with
// writes routed to each record's shard and an exact scatter-gather Search.
package client

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// Client is a connection to an embedd server. Its methods are safe for
// concurrent use.
type Client struct {
	cc     *grpc.ClientConn
	emb    embeddv1.EmbeddingServiceClient
	idx    embeddv1.IndexServiceClient
	health healthpb.HealthClient
	window int // EmbedStream's chunks in flight

	closeOnce sync.Once
	closeErr  error
}

// Dial returns a client of the server at target ("host:port", or any gRPC
// target such as "dns:///host:port" or "unix:///path"). A "dns:" target
// balances calls round-robin over every address the name resolves to, such
// as the pods behind a Kubernetes headless Service, and resolves again when
// a connection ends (as servers with max_connection_age end them), so new
// pods get their share; other targets use one connection at a time (gRPC's
// pick_first). Unless WithBlock is
// given it does not connect (gRPC does that in the background) and ctx is
// not used; with WithBlock, ctx bounds the wait. The caller closes the
// client.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				return nil, fmt.Errorf("embedd/client: TLS CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("embedd/client: TLS CA file %s: no PEM certificates in it", o.caFile)
			}
			o.tls.RootCAs = pool
		}
		creds = credentials.NewTLS(o.tls)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(unaryInterceptor(o.retry, o.timeout)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxMsgBytes)),
	}
	if o.apiKey != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer(o.apiKey)))
	}
	if strings.HasPrefix(target, "dns:") {
		// Every address the name resolves to (every pod behind a headless
		// Service) gets a connection, and calls take turns over them.
		dopts = append(dopts, grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
	}
	cc, err := grpc.NewClient(target, append(dopts, o.dialOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("embedd/client: %w", err)
	}
	c := &Client{
		cc:     cc,
		emb:    embeddv1.NewEmbeddingServiceClient(cc),
		idx:    embeddv1.NewIndexServiceClient(cc),
		health: healthpb.NewHealthClient(cc),
		window: o.streamWindow,
	}
	if o.block {
		if err := waitReady(ctx, cc); err != nil {
			return nil, errors.Join(fmt.Errorf("embedd/client: connecting to %s: %w", target, err), cc.Close())
		}
	}
	return c, nil
}

// waitReady connects cc and waits until it is ready or ctx ends.
func waitReady(ctx context.Context, cc *grpc.ClientConn) error {
	cc.Connect()
	for {
		s := cc.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !cc.WaitForStateChange(ctx, s) {
			return fmt.Errorf("%w (connection %s)", ctx.Err(), s)
		}
	}
}

// Close closes the connection; calls in progress fail with CANCELED. Close
// is safe on a nil client and returns nil after the first call.
func (c *Client) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() { c.closeErr = c.cc.Close() })
	return c.closeErr
}

// Conn returns the underlying connection, for services this package does
// not wrap. It is closed by Close.
func (c *Client) Conn() *grpc.ClientConn { return c.cc }

// bearer sends an API key as "authorization: Bearer KEY".
type bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// key may go over plaintext (WithInsecure), for servers on a private
// network or loopback.
func (b bearer) RequireTransportSecurity() bool { return false }
