// Command wordpiece turns text into WordPiece ids for scripts/train_static.py:
// each input line is encoded with embedd's tokenizer (the exact Hugging Face
// WordPiece implementation) without [CLS] and [SEP], as a StaticEmbedding
// model encodes it, and written as little-endian uint16 ids followed by the
// separator 0xFFFF. The vocabulary must have fewer than 65535 ids.
//
//	go run ./scripts/wordpiece TOKENIZER_JSON < lines.txt > ids.u16
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/embedd/embedd/models/tokenizer"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: wordpiece TOKENIZER_JSON < lines.txt > ids.u16")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wordpiece:", err)
		os.Exit(1)
	}
}

func run(tokPath string, in io.Reader, out io.Writer) error {
	tok, err := tokenizer.FromFile(tokPath)
	if err != nil {
		return err
	}
	if tok.VocabSize() >= 0xFFFF {
		return fmt.Errorf("vocabulary of %d ids does not fit uint16 with a separator", tok.VocabSize())
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	w := bufio.NewWriterSize(out, 1<<20)
	var ids []int32
	var buf []byte
	for sc.Scan() {
		ids, _ = tok.Encode(ids[:0], sc.Text(), 0)
		buf = buf[:0]
		for _, id := range ids[1 : len(ids)-1] { // drop [CLS] and [SEP]
			buf = binary.LittleEndian.AppendUint16(buf, uint16(id))
		}
		buf = binary.LittleEndian.AppendUint16(buf, 0xFFFF)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return w.Flush()
}
