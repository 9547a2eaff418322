package jobs

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs the child job of the kill test when asked to, else the
// tests (checking that none leaves a goroutine behind).
func TestMain(m *testing.M) {
	if os.Getenv("EMBEDD_JOBS_CHILD") != "" {
		os.Exit(childJob())
	}
	if os.Getenv("EMBEDD_PAIRS_CHILD") != "" {
		os.Exit(childPairs())
	}
	goleak.VerifyTestMain(m)
}

// fakeVector is the vector fakeStage gives text: exact float32s that a
// torn or mixed-up record would not reproduce.
func fakeVector(text string) []float32 {
	v := make([]float32, 8)
	for i := range v {
		h := fnv.New32a()
		fmt.Fprintf(h, "%d:%s", i, text)
		v[i] = float32(h.Sum32()%20000)/10000 - 1
	}
	return v
}

// fakeStage embeds with fakeVector after delay per part, failing texts
// that start with "FAIL"; log, when set, receives "line N" for the first
// line of every part it starts.
func fakeStage(delay time.Duration, log *os.File) Stage {
	return func(ctx context.Context, recs []Record, out []Result) error {
		if log != nil {
			fmt.Fprintf(log, "line %d\n", recs[0].Line)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		for i, r := range recs {
			if out[i].Err != "" {
				continue
			}
			if strings.HasPrefix(r.Texts[0], "FAIL") {
				out[i].Err = "refused by the fake stage"
				continue
			}
			for _, t := range r.Texts {
				out[i].Vectors = append(out[i].Vectors, fakeVector(t))
			}
			out[i].Model = "fake"
		}
		return nil
	}
}

// childJob runs the job the kill test describes in its environment.
func childJob() int {
	log, err := os.OpenFile(os.Getenv("EMBEDD_JOBS_LOG"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer log.Close()
	part, _ := strconv.Atoi(os.Getenv("EMBEDD_JOBS_PART"))
	_, err = Run(context.Background(), Job{
		Kind: "embed", Input: Input{Path: os.Getenv("EMBEDD_JOBS_IN")},
		Stage:  fakeStage(5*time.Millisecond, log),
		Output: Output{Path: os.Getenv("EMBEDD_JOBS_OUT"), ErrorsPath: os.Getenv("EMBEDD_JOBS_OUT") + ".errors"},
		Dir:    os.Getenv("EMBEDD_JOBS_DIR"), PartSize: part, Workers: 4,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
