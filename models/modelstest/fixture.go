package modelstest

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/goleak"
)

// Missing is what a TestMain does when opening the shared fixtures (ONNX
// Runtime and the test model of scripts/setup.sh) failed with err: with
// EMBEDD_REQUIRE_ORT set (as scripts/test.sh and CI set it) it exits 1
// saying so, since a missing fixture must fail there rather than skip;
// otherwise it returns the reason the tests then skip with. A nil err
// gives "".
func Missing(err error) string {
	if err == nil {
		return ""
	}
	if os.Getenv("EMBEDD_REQUIRE_ORT") != "" {
		fmt.Fprintf(os.Stderr, "EMBEDD_REQUIRE_ORT is set and the fixtures are missing: %v\n", err)
		os.Exit(1)
	}
	return fmt.Sprintf("ONNX Runtime or the test model is missing (run scripts/setup.sh): %v", err)
}

// Finish ends a TestMain whose tests exited with code: it closes the
// fixtures (in order; nil ones are skipped) and, when everything passed,
// checks that no goroutine was left behind. It returns the exit code.
func Finish(code int, fixtures ...io.Closer) int {
	var errs []error
	for _, f := range fixtures {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	return code
}
