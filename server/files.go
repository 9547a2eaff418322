package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/core/files"
)

// uploadReadTimeout bounds reading one POST /v1/files body, in place of
// the server's read timeout for other requests: the size limit, not the
// clock, bounds an upload.
const uploadReadTimeout = time.Hour

// multipartSlack is what a multipart body may hold beyond its file: the
// boundaries, the part headers and the purpose field.
const multipartSlack = 64 << 10

// bodyLimit is the most bytes r's body may hold: max_file_bytes (plus the
// multipart framing) for an upload, max_message_bytes otherwise.
func (s *Server) bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/files" {
		return s.cfg.MaxFileBytes + multipartSlack
	}
	return int64(s.cfg.MaxMessageBytes)
}

// owner is whom r's files and batches belong to: a hash of its API key
// when keys are configured (the key itself is never stored), else "" (one
// owner for everyone).
func (s *Server) owner(r *http.Request) string {
	if len(s.cfg.APIKeys) == 0 {
		return ""
	}
	h := sha256.Sum256([]byte(bearer(r.Header.Get("Authorization"))))
	return hex.EncodeToString(h[:16])
}

// batchAPI is the state of the Files and Batches API, or nil (having
// written 503) while the models load.
func (s *Server) batchAPI(w http.ResponseWriter) *batchState {
	st := s.batches.Load()
	if st == nil {
		writeError(w, core.Unavailablef("the server is still loading; retry shortly"))
	}
	return st
}

// fileNotFound is OpenAI's answer for an unknown file id.
func fileNotFound(w http.ResponseWriter, id string) {
	writeError(w, &core.Error{Kind: core.NotFound, Msg: "No such File object: " + id})
}

// fileError writes an error of the file store.
func fileError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, files.ErrNotFound) {
		fileNotFound(w, id)
		return
	}
	writeError(w, err)
}

// tooLarge writes OpenAI's 413 for a body over limit bytes.
func tooLarge(w http.ResponseWriter, limit int64) {
	writeOpenAIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "file", fmt.Sprintf("the file is over the limit of %d bytes (max_file_bytes)", limit))
}

// createFile serves POST /v1/files: a multipart form with "file" and
// "purpose" (= "batch"), in either order; the file streams to disk.
func (s *Server) createFile(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadReadTimeout)) // ErrNotSupported keeps the server's
	mr, err := r.MultipartReader()
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "file", "the body must be multipart/form-data with the fields file and purpose: "+err.Error())
		return
	}
	up, err := st.files.NewUpload()
	if err != nil {
		writeError(w, err)
		return
	}
	defer up.Abort()
	var purpose, filename string
	gotFile := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				tooLarge(w, st.files.Limit())
				return
			}
			writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "malformed multipart body: "+err.Error())
			return
		}
		switch part.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(part, 64))
			if err != nil {
				writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "purpose", "reading purpose: "+err.Error())
				return
			}
			purpose = string(b)
		case "file":
			if gotFile {
				writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "file", "send one file per upload")
				return
			}
			gotFile, filename = true, part.FileName()
			if _, err := up.ReadFrom(part); err != nil {
				_, overBody := errors.AsType[*http.MaxBytesError](err)
				if overBody || errors.Is(err, files.ErrTooLarge) {
					tooLarge(w, st.files.Limit())
					return
				}
				writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "file", "reading the file: "+err.Error())
				return
			}
		}
		part.Close()
	}
	switch {
	case !gotFile:
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "file", "'file' is a required property")
	case purpose != "batch":
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "purpose", fmt.Sprintf("purpose %q is not supported: embedd stores files for batches, so send purpose=batch", purpose))
	default:
		f, err := up.Commit(s.owner(r), filename, purpose)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, f)
	}
}

// listPage is OpenAI's cursor page.
type listPage[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// newListPage pages data, whose ids id gives.
func newListPage[T any](data []T, more bool, id func(T) string) listPage[T] {
	p := listPage[T]{Object: "list", Data: data, HasMore: more}
	if p.Data == nil {
		p.Data = []T{}
	}
	if len(data) > 0 {
		first, last := id(data[0]), id(data[len(data)-1])
		p.FirstID, p.LastID = &first, &last
	}
	return p
}

// queryLimit reads the limit query parameter: def when absent, else in
// [1, max]; ok is false after writing the 400.
func queryLimit(w http.ResponseWriter, r *http.Request, def, max int) (n int, ok bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "limit", fmt.Sprintf("limit %q is not an integer in [1, %d]", v, max))
		return 0, false
	}
	return n, true
}

// listFiles serves GET /v1/files (purpose, limit, order, after).
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	q := r.URL.Query()
	limit, ok := queryLimit(w, r, 10000, 10000)
	if !ok {
		return
	}
	order := q.Get("order")
	if order != "" && order != "asc" && order != "desc" {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "order", fmt.Sprintf("order %q is not asc or desc", order))
		return
	}
	page, more := st.files.List(s.owner(r), files.ListOptions{Purpose: q.Get("purpose"), After: q.Get("after"), Limit: limit, Ascending: order == "asc"})
	writeJSON(w, newListPage(page, more, func(f files.File) string { return f.ID }))
}

// getFile serves GET /v1/files/{file_id}.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	id := r.PathValue("file_id")
	f, err := st.files.Get(s.owner(r), id)
	if err != nil {
		fileError(w, id, err)
		return
	}
	writeJSON(w, f)
}

// fileContent serves GET /v1/files/{file_id}/content (ranges too).
func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	id := r.PathValue("file_id")
	rd, f, err := st.files.Content(s.owner(r), id)
	if err != nil {
		fileError(w, id, err)
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", f.Filename))
	http.ServeContent(w, r, "", time.Unix(f.CreatedAt, 0), rd)
}

// deleteFile serves DELETE /v1/files/{file_id}.
func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	st := s.batchAPI(w)
	if st == nil {
		return
	}
	id := r.PathValue("file_id")
	if err := st.files.Delete(s.owner(r), id); err != nil {
		fileError(w, id, err)
		return
	}
	writeJSON(w, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{id, "file", true})
}
