package ratelimit_test

import (
	"fmt"

	"github.com/embedd/embedd/server/ratelimit"
)

func Example() {
	l := ratelimit.New(10, 2) // 10 calls a second per client, 2 at once
	for range 3 {
		ok, retryAfter := l.Allow("api-key-1", 1)
		fmt.Println(ok, retryAfter > 0)
	}
	ok, _ := l.Allow("api-key-2", 1) // another client, another bucket
	fmt.Println(ok)
	// Output:
	// true false
	// true false
	// false true
	// true
}
