// Command s3gateway builds the S3 gateway the tests run, if this machine
// has not built it yet, and prints its path. `make test` starts it in the
// background before anything else (see internal/testcluster/s3build).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster/s3build"
)

func main() {
	began := time.Now()
	bin, err := s3build.Binary(func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "s3gateway: "+format+"\n", args...)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "s3gateway: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("s3gateway: %s ready after %s\n", bin, time.Since(began).Round(time.Second))
}
