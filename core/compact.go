package core

import "context"

// CompactResult is what Compact did: the collection after it, and its
// stored rows (deleted and replaced ones included) before and after.
type CompactResult struct {
	Collection            CollectionInfo
	RowsBefore, RowsAfter int
}

// Compact rewrites collection name's live rows into new files, reclaiming
// the rows that deletes and upserts left behind (index.Collection.Compact:
// searches and writes go on meanwhile). With nothing to reclaim it does
// nothing.
func (c *Core) Compact(ctx context.Context, name string) (CompactResult, error) {
	col, err := c.collection(name)
	if err != nil {
		return CompactResult{}, err
	}
	before := col.Stats().Rows
	if err := col.Compact(ctx); err != nil {
		return CompactResult{}, AsError(err)
	}
	return CompactResult{Collection: describe(name, col), RowsBefore: before, RowsAfter: col.Stats().Rows}, nil
}
