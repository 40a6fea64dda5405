package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

func runCtlStatus(ctx context.Context, opts *ctlOptions, health bool, expect int, out io.Writer) error {
	conn, err := connect(opts, out)
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := conn.Ops.Status(sctx, true)
	if err != nil {
		return err
	}
	if err := writeOutput(out, opts.output, r, r.WriteTable); err != nil || !health {
		return err
	}
	if p := r.Problems(max(expect, len(r.Members))); len(p) > 0 {
		return fmt.Errorf("cluster %s is not healthy: %s", conn.Cluster, strings.Join(p, "; "))
	}
	return nil
}
