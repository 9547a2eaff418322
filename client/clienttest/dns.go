package clienttest

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// DNS stands in for the cluster DNS of a Kubernetes headless Service: a
// resolver for the "dns" scheme of one client (give the client
// DialOption) whose records the test sets, and which, like DNS, the client
// reads again only when it asks to (after a connection ends, such as when a
// server's max_connection_age closes it). Close it before the client.
type DNS struct {
	r *manual.Resolver

	mu       sync.Mutex
	records  []string
	closed   bool
	resolves int
}

// NewDNS returns a resolver that first answers records (host:port).
func NewDNS(records ...string) *DNS {
	d := &DNS{r: manual.NewBuilderWithScheme("dns"), records: records}
	d.r.InitialState(d.state())
	d.r.ResolveNowCallback = func(resolver.ResolveNowOptions) {
		go d.answer() // not on the caller's goroutine: it holds the channel's locks
	}
	return d
}

// DialOption makes a client resolve "dns:" targets with d.
func (d *DNS) DialOption() grpc.DialOption { return grpc.WithResolvers(d.r) }

func (d *DNS) state() resolver.State {
	var s resolver.State
	for _, a := range d.records {
		s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
	}
	return s
}

// answer gives the client the current records.
func (d *DNS) answer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.resolves++
		d.r.UpdateState(d.state())
	}
}

// Set replaces the records without telling the client.
func (d *DNS) Set(records ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records = records
}

// Resolves is how many times the client has read the records again.
func (d *DNS) Resolves() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resolves
}

// Close stops answering.
func (d *DNS) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
}
