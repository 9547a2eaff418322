package server

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/embedd/embedd/batches"
	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/core/files"
)

// batchState is what the Files and Batches API serve from, opened with
// the core.
type batchState struct {
	files   *files.Store
	batches *batches.Manager
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
	mux.HandleFunc("POST /v1/batches", s.createBatch)
	mux.HandleFunc("GET /v1/batches", s.listBatches)
	mux.HandleFunc("GET /v1/batches/{batch_id}", s.getBatch)
	mux.HandleFunc("POST /v1/batches/{batch_id}/cancel", s.cancelBatch)
}

// openBatches opens the file store and the batches in the data dir; the
// batches that had not ended resume.
func (s *Server) openBatches(c *core.Core) error {
	dir := filepath.Join(c.Config().DataDir, openAIDir)
	fs, err := files.Open(filepath.Join(dir, "files"), s.cfg.MaxFileBytes)
	if err != nil {
		return fmt.Errorf("embedd/server: %w", err)
	}
	bm, err := batches.Open(filepath.Join(dir, "batches"), c, fs, s.log)
	if err != nil {
		return fmt.Errorf("embedd/server: %w", err)
	}
	s.batches.Store(&batchState{files: fs, batches: bm})
	s.metrics.registerBatches(bm.Progress)
	return nil
}

// closeBatches stops the batch running (it resumes at the next start).
func (s *Server) closeBatches() {
	if st := s.batches.Load(); st != nil {
		st.batches.Close()
	}
}

// batchError writes an error of the batch manager (or of the file store,
// for the input file) as OpenAI would.
func batchError(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, batches.ErrNotFound):
		writeError(w, &core.Error{Kind: core.NotFound, Msg: "No such Batch object: " + id})
	case errors.Is(err, files.ErrNotFound):
		fileNotFound(w, id)
	case errors.Is(err, batches.ErrInvalid):
		writeError(w, &core.Error{Kind: core.InvalidArgument, Msg: err.Error()})
	case errors.Is(err, batches.ErrState):
		writeError(w, &core.Error{Kind: core.FailedPrecondition, Msg: err.Error()})
	default:
		writeError(w, err)
	}
}

// createBatch serves POST /v1/batches.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	var req batches.CreateRequest
	if !readJSON(w, r, &req) {
		return
	}
	b, err := st.batches.Create(s.owner(r), req)
	if err != nil {
		batchError(w, req.InputFileID, err)
		return
	}
	writeJSON(w, b)
}

// listBatches serves GET /v1/batches (limit, after).
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	limit, ok := queryLimit(w, r, 20, 100)
	if !ok {
		return
	}
	page, more := st.batches.List(s.owner(r), r.URL.Query().Get("after"), limit)
	writeJSON(w, newListPage(page, more, func(b batches.Batch) string { return b.ID }))
}

// getBatch serves GET /v1/batches/{batch_id}.
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	id := r.PathValue("batch_id")
	b, err := st.batches.Get(s.owner(r), id)
	if err != nil {
		batchError(w, id, err)
		return
	}
	writeJSON(w, b)
}

// cancelBatch serves POST /v1/batches/{batch_id}/cancel.
func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	id := r.PathValue("batch_id")
	b, err := st.batches.Cancel(s.owner(r), id)
	if err != nil {
		batchError(w, id, err)
		return
	}
	writeJSON(w, b)
}
