package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// compactServer answers Compact for collection "docs" and NOT_FOUND for
// any other, counting the calls.
type compactServer struct {
	embeddv1.UnimplementedIndexServiceServer
	calls []string
}

func (s *compactServer) Compact(_ context.Context, req *embeddv1.CompactRequest) (*embeddv1.CompactResponse, error) {
	s.calls = append(s.calls, req.Name)
	if req.Name != "docs" {
		return nil, status.Errorf(codes.NotFound, "collection %q", req.Name)
	}
	return &embeddv1.CompactResponse{Collection: &embeddv1.Collection{Name: "docs", Dimension: 2, Count: 1}, RowsBefore: 20, RowsAfter: 1}, nil
}

// Issue 11.12: embedctl collections compact asks the server to compact.
func TestCollectionsCompact(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	cs := &compactServer{}
	embeddv1.RegisterIndexServiceServer(srv, cs)
	go srv.Serve(lis)
	defer srv.Stop()
	var out, errOut bytes.Buffer
	code := run([]string{"--addr", lis.Addr().String(), "--timeout", "10s", "collections", "compact", "docs"}, strings.NewReader(""), &out, &errOut)
	want := `{"collection":{"name":"docs","dimension":2,"metric":"cosine","count":1},"rows_before":20,"rows_after":1}` + "\n"
	if code != 0 || out.String() != want {
		t.Fatalf("compact docs: exit %d, stdout %q, stderr %q; want %q", code, out.String(), errOut.String(), want)
	}
	out.Reset()
	code = run([]string{"--addr", lis.Addr().String(), "--timeout", "10s", "collections", "compact", "docs", "nope", "never"}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), `embedctl collections compact: nope: NOT_FOUND: collection "nope"`) || strings.Join(cs.calls, ",") != "docs,docs,nope" {
		t.Fatalf("compact docs nope never: exit %d, stderr %q, calls %v", code, errOut.String(), cs.calls)
	}
	if code := run([]string{"collections", "compact"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Errorf("compact without a name: exit %d, want 2", code)
	}
}
