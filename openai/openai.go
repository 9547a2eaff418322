// Package openai writes the body of an OpenAI embeddings response,
// {"object":"list","data":[{"object":"embedding","index":0,"embedding":...}],
// "model":...,"usage":{...}}, for the HTTP server's /v1/embeddings and the
// Batch API's output lines: byte for byte what encoding/json writes for it,
// at a fraction of the cost (its numbers through ftoa, no reflection).
package openai

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/embedd/embedd/ftoa"
)

// Base64 reads a request's encoding_format: true for "base64", false for
// "float" or none, an error naming it for anything else.
func Base64(encodingFormat string) (bool, error) {
	switch encodingFormat {
	case "", "float":
		return false, nil
	case "base64":
		return true, nil
	}
	return false, fmt.Errorf("encoding_format %q is not float or base64", encodingFormat)
}

// AppendEmbeddings appends to b the response body for vectors (one a text,
// in input order) from model, which read tokens tokens. With base64 each
// embedding is the base64 of its little-endian float32s (encoding_format
// "base64"); otherwise a JSON array of numbers.
func AppendEmbeddings(b []byte, vectors [][]float32, model string, tokens int, base64 bool) []byte {
	b = append(b, `{"object":"list","data":[`...)
	var raw []byte
	for i, v := range vectors {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if base64 {
			raw = appendLittleEndian(raw[:0], v)
			b = appendBase64(b, raw)
		} else {
			b = ftoa.AppendArray(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	q, _ := json.Marshal(model) // a string always marshals
	b = append(b, q...)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	return append(b, "}}"...)
}

func appendLittleEndian(b []byte, v []float32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func appendBase64(b, raw []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}
