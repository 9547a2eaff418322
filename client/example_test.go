package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"time"

	"github.com/embedd/embedd/client"
)

// A client with an API key, a default timeout and retries of up to six
// attempts; errors keep their gRPC status.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "127.0.0.1:50051",
		client.WithAPIKey(os.Getenv("EMBEDD_API_KEY")),
		client.WithTimeout(10*time.Second),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 6}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	vecs, err := c.Embed(ctx, []string{"Hello, world"}, client.EmbedOptions{Normalize: client.NormalizeOn})
	if err != nil {
		log.Fatal(err) // e.g. embedd/client: Embed: rpc error: code = NotFound desc = ...
	}
	fmt.Println(len(vecs[0]))
}

// Bulk embedding over one stream: results come back in the order of the
// chunks, with at most a few chunks in flight.
func ExampleClient_EmbedStream() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	texts := make([]string, 10_000)
	for i := range texts {
		texts[i] = fmt.Sprint("document ", i)
	}
	for r, err := range c.EmbedStream(ctx, slices.Chunk(texts, 256), client.EmbedOptions{}) {
		if err != nil {
			log.Fatal(err) // a *client.ChunkError names the chunk
		}
		fmt.Println(r.First, len(r.Vectors))
	}
}
