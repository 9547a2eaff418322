package tokenizer_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/embedd/embedd/models/tokenizer"
)

func Example() {
	tok, err := tokenizer.FromFile("testdata/all-minilm-l6-v2.json")
	if err != nil {
		log.Fatal(err)
	}
	ids, n := tok.Encode(nil, "Hello, naïve World!", 0)
	fmt.Println(ids, n)
	var tokens []string
	for _, id := range ids {
		s, _ := tok.Token(id)
		tokens = append(tokens, s)
	}
	fmt.Println(strings.Join(tokens, " "))

	// With a limit the word pieces are cut and [SEP] kept; n still tells
	// the full length.
	ids, n = tok.Encode(ids[:0], "Hello, naïve World!", 4)
	fmt.Println(ids, n)
	// Output:
	// [101 7592 1010 15743 2088 999 102] 7
	// [CLS] hello , naive world ! [SEP]
	// [101 7592 1010 102] 7
}
