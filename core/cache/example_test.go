package cache_test

import (
	"fmt"

	"github.com/embedd/embedd/core/cache"
)

func Example() {
	c := cache.New(64 << 20) // 64 MiB of vectors and their bookkeeping
	k := cache.Key("minilm", 0, 0, "Hello, world")

	if _, ok := c.Get(k); !ok {
		v := []float32{0.6, 0.8} // computed by the model
		c.Put(k, v)
	}
	v, ok := c.Get(k)
	st := c.Stats()
	fmt.Println(v, ok, st.Hits, st.Misses, st.Entries)
	// Output: [0.6 0.8] true 1 1 1
}
