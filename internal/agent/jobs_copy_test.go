package agent

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/jobs"
)

// A copy job runs `pgguard copy` with the job's destination, selection and
// WAL mode, the node's config and JSON output for the run record.
func TestCopyJobCommandLine(t *testing.T) {
	r := &jobRunner{}
	cases := []struct {
		opts jobs.Options
		want string
	}{
		{jobs.Options{ToRepo: "s3://offsite/main"}, "copy -c /etc/pgguard/node.yaml -o json --channels 4 --to-repo s3://offsite/main --all"},
		{jobs.Options{ToRepo: "file:///mnt/copy", Newest: 2, WAL: "all"}, "copy -c /etc/pgguard/node.yaml -o json --channels 4 --to-repo file:///mnt/copy --newest 2 --wal all"},
	}
	for _, c := range cases {
		j := jobs.Job{ID: "offsite", Kind: jobs.KindCopy, Options: c.opts}
		args, err := r.kindArgs(j, "", "/etc/pgguard/node.yaml", "4")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(args, " "); got != c.want {
			t.Errorf("copy job %+v:\n got %s\nwant %s", c.opts, got, c.want)
		}
		if slices.Contains(args, "--passphrase") {
			t.Error("a secret on the command line")
		}
	}
}
