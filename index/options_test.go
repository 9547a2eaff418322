package index

import (
	"log/slog"
	"testing"
)

func TestOptionsDefaults(t *testing.T) {
	o := buildOptions(nil)
	if o.logger != slog.Default() || o.checkpointBytes != 64<<20 || o.groupBytes != 8<<20 {
		t.Fatalf("defaults %+v", o)
	}
	var lb logBuffer
	l := lb.logger()
	o = buildOptions([]Option{WithLogger(l), WithCheckpointBytes(0), WithGroupCommitBytes(1 << 10)})
	if o.logger != l || o.checkpointBytes != 0 || o.groupBytes != 1<<10 {
		t.Fatalf("set %+v", o)
	}
	o = buildOptions([]Option{WithLogger(nil), WithGroupCommitBytes(-1)})
	if o.logger != slog.Default() || o.groupBytes != 8<<20 {
		t.Fatalf("nil logger and a negative group size keep the defaults: %+v", o)
	}
}
