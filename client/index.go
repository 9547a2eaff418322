package client

import (
	"context"
	"fmt"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// The index service's calls pass the API's messages through unchanged
// (see proto/embedd/v1/index.proto for the fields and their rules); they
// gain the client's API key, timeout and retries, and errors prefixed with
// the call's name.

// CreateCollection makes an empty collection and describes it.
func (c *Client) CreateCollection(ctx context.Context, req *embeddv1.CreateCollectionRequest) (*embeddv1.Collection, error) {
	resp, err := c.idx.CreateCollection(ctx, req)
	if err != nil {
		return nil, errorf("CreateCollection", err)
	}
	return resp.GetCollection(), nil
}

// DropCollection deletes the collection name and its records.
func (c *Client) DropCollection(ctx context.Context, name string) error {
	if _, err := c.idx.DropCollection(ctx, &embeddv1.DropCollectionRequest{Name: name}); err != nil {
		return errorf("DropCollection", err)
	}
	return nil
}

// ListCollections describes every collection.
func (c *Client) ListCollections(ctx context.Context) ([]*embeddv1.Collection, error) {
	resp, err := c.idx.ListCollections(ctx, &embeddv1.ListCollectionsRequest{})
	if err != nil {
		return nil, errorf("ListCollections", err)
	}
	return resp.GetCollections(), nil
}

// Upsert adds or replaces records and returns how many were written, once
// they are durable.
func (c *Client) Upsert(ctx context.Context, req *embeddv1.UpsertRequest) (uint64, error) {
	resp, err := c.idx.Upsert(ctx, req)
	if err != nil {
		return 0, errorf("Upsert", err)
	}
	return resp.GetUpserted(), nil
}

// Delete removes the records ids of collection and returns how many
// existed, once that is durable.
func (c *Client) Delete(ctx context.Context, collection string, ids []string) (uint64, error) {
	resp, err := c.idx.Delete(ctx, &embeddv1.DeleteRequest{Collection: collection, Ids: ids})
	if err != nil {
		return 0, errorf("Delete", err)
	}
	return resp.GetDeleted(), nil
}

// Get returns the records ids of collection that exist, in request order,
// and lists the ids that do not.
func (c *Client) Get(ctx context.Context, collection string, ids []string) (*embeddv1.GetResponse, error) {
	resp, err := c.idx.Get(ctx, &embeddv1.GetRequest{Collection: collection, Ids: ids})
	if err != nil {
		return nil, errorf("Get", err)
	}
	return resp, nil
}

// Search returns the k nearest records of each query, one result per
// query, in order.
func (c *Client) Search(ctx context.Context, req *embeddv1.SearchRequest) ([]*embeddv1.SearchResult, error) {
	resp, err := c.idx.Search(ctx, req)
	if err != nil {
		return nil, errorf("Search", err)
	}
	if len(resp.GetResults()) != len(req.GetQueries()) {
		return nil, errorf("Search", fmt.Errorf("the server returned %d results for %d queries", len(resp.GetResults()), len(req.GetQueries())))
	}
	return resp.GetResults(), nil
}
