package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// StreamResult is the answer to one chunk of an EmbedStream.
type StreamResult struct {
	// Chunk is the chunk's 0-based position in the stream.
	Chunk int
	// First is the position of the chunk's first text among all the
	// stream's texts.
	First int
	// Vectors holds one vector per text of the chunk, in order.
	Vectors [][]float32
	// Tokens counts the tokens the model read for the chunk.
	Tokens uint64
}

// ChunkError is the failure of one chunk of an EmbedStream; the stream
// goes on.
type ChunkError struct {
	// Chunk, First and Len place the chunk: its position in the stream, the
	// position of its first text among all texts, and its number of texts.
	Chunk, First, Len int
	// Err is a gRPC status error: status.Code(Err) says what was wrong.
	Err error
}

// Error implements error.
func (e *ChunkError) Error() string {
	return fmt.Sprintf("embedd/client: EmbedStream: chunk %d (texts %d to %d): %v", e.Chunk, e.First, e.First+e.Len-1, e.Err)
}

// Unwrap returns the chunk's status error.
func (e *ChunkError) Unwrap() error { return e.Err }

// EmbedStream embeds many texts over one bidirectional stream and yields
// each chunk's result in the order of chunks. Each chunk is one request
// message: a few hundred texts make a good chunk. At most WithStreamWindow
// chunks are in flight (sent without an answer), so memory stays flat
// however many chunks there are, as long as the caller consumes results.
//
// A chunk the server refuses yields its *ChunkError and the stream goes
// on; any other error ends the stream and is the last thing yielded.
// Stopping the loop early cancels the stream. Streams are not retried and
// WithTimeout does not bound them: ctx does.
//
// chunks is ranged over on a goroutine of its own, which EmbedStream
// waits for before it returns: a chunks iterator that blocks (say, on a
// terminal) delays the return until it yields or ends. A chunk must not
// be changed after it is yielded.
func (c *Client) EmbedStream(ctx context.Context, chunks iter.Seq[[]string], o EmbedOptions) iter.Seq2[StreamResult, error] {
	return func(yield func(StreamResult, error) bool) {
		opts, err := o.proto()
		if err != nil {
			yield(StreamResult{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.emb.EmbedStream(ctx)
		if err != nil {
			yield(StreamResult{}, errorf("EmbedStream", err))
			return
		}

		// The sender registers each chunk in inflight, then sends it; the
		// channel's capacity is the window. It closes inflight when done.
		type sent struct{ chunk, first, n int }
		inflight := make(chan sent, c.window)
		done := make(chan struct{})
		var sendErr error // written by the sender before done closes
		go func() {
			defer close(done)
			defer close(inflight)
			chunk, first := 0, 0
			for texts := range chunks {
				select {
				case inflight <- sent{chunk, first, len(texts)}:
				case <-ctx.Done():
					return
				}
				req := &embeddv1.EmbedStreamRequest{Id: uint64(chunk), Texts: texts, Options: opts}
				if err := stream.Send(req); err != nil {
					if !errors.Is(err, io.EOF) { // io.EOF: Recv will say why
						sendErr = err
					}
					return
				}
				chunk++
				first += len(texts)
			}
			if err := stream.CloseSend(); err != nil {
				sendErr = err
			}
		}()
		defer func() {
			cancel()
			<-done
		}()

		// fail reports a stream-ending error, preferring the sender's.
		fail := func(err error) {
			cancel()
			<-done
			if sendErr != nil {
				err = sendErr
			}
			yield(StreamResult{}, errorf("EmbedStream", err))
		}
		for s := range inflight {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				err = status.Errorf(codes.Internal, "the server ended the stream before answering chunk %d", s.chunk)
			}
			if err != nil {
				fail(err)
				return
			}
			if resp.GetId() != uint64(s.chunk) {
				fail(fmt.Errorf("the server answered chunk %d when chunk %d was due", resp.GetId(), s.chunk))
				return
			}
			if e := resp.GetError(); e != nil {
				cerr := &ChunkError{Chunk: s.chunk, First: s.first, Len: s.n, Err: status.Error(codes.Code(e.GetCode()), e.GetMessage())}
				if !yield(StreamResult{Chunk: s.chunk, First: s.first}, cerr) {
					return
				}
				continue
			}
			vecs, err := vectors(resp.GetEmbeddings(), s.n)
			if err != nil {
				fail(fmt.Errorf("chunk %d: %w", s.chunk, err))
				return
			}
			if !yield(StreamResult{Chunk: s.chunk, First: s.first, Vectors: vecs, Tokens: resp.GetTokens()}, nil) {
				return
			}
		}
		<-done
		if sendErr != nil {
			yield(StreamResult{}, errorf("EmbedStream", sendErr))
			return
		}
		if ctx.Err() != nil { // the sender stopped because ctx ended
			yield(StreamResult{}, errorf("EmbedStream", status.FromContextError(ctx.Err()).Err()))
			return
		}
		// Every chunk is answered: the server should now end the stream.
		if resp, err := stream.Recv(); err == nil {
			yield(StreamResult{}, errorf("EmbedStream", fmt.Errorf("the server answered chunk %d, which was never sent", resp.GetId())))
		} else if !errors.Is(err, io.EOF) {
			yield(StreamResult{}, errorf("EmbedStream", err))
		}
	}
}
