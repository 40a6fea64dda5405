package demo

import (
	"path/filepath"
	"strings"
	"testing"
)

// The rows below are Debian's HAProxy 2.6 answering "show stat" (columns
// cut to those read) 0.1 s after its start, and once its checks had run.
func TestUncheckedServersWaitsForEveryFirstCheck(t *testing.T) {
	const header = "# pxname,svname,qcur,status,check_status,check_code\n"
	cases := []struct {
		name, rows string
		pending    []string
	}{
		{"a server HAProxy still takes to be up before its first check", "rw,FRONTEND,,OPEN,,\nrw,n1,0,DOWN,L4CON,\nrw,n2,0,UP 1/2,INI,\nrw,n3,0,UP 1/2,* INI,\nrw,BACKEND,0,UP,,\n",
			[]string{`rw/n2 UP 1/2 after "INI"`, `rw/n3 UP 1/2 after "INI"`}},
		{"a failed check that has not yet marked the server down", "rw,n1,0,UP 1/2,L7STS,503\nrw,n2,0,UP,L7OK,200\n",
			[]string{`rw/n1 UP 1/2 after "L7STS"`}},
		{"a passed check on a server still down", "ro,n1,0,DOWN 1/1,L7OK,200\n",
			[]string{`ro/n1 DOWN 1/1 after "L7OK"`}},
		{"every server routed by its check", "rw,FRONTEND,,OPEN,,\nrw,n1,0,DOWN,L7STS,503\nrw,n2,0,UP,* L7OK,200\nrw,n3,0,DOWN,L4CON,\nrw,BACKEND,0,UP,,\n",
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := parseStat(header + c.rows)
			if err != nil {
				t.Fatal(err)
			}
			got := uncheckedServers(rows)
			if strings.Join(got, "; ") != strings.Join(c.pending, "; ") {
				t.Fatalf("pending %q, want %q", got, c.pending)
			}
		})
	}
	if _, err := parseStat("Unknown command: 'show stats'\n"); err == nil || !strings.Contains(err.Error(), "Unknown command") {
		t.Fatalf("an answer without the CSV header: err %v, want one quoting the answer", err)
	}
}

func TestHAProxySocketFitsAUnixSocketPath(t *testing.T) {
	short := Layout{Dir: "/tmp/demo"}
	if got := short.haproxySocket(); got != filepath.Join("/tmp/demo", "haproxy.sock") {
		t.Fatalf("socket of a short directory: %s", got)
	}
	long := Layout{Dir: "/tmp/" + strings.Repeat("d", 120)}
	got := long.haproxySocket()
	if len(got) >= 108 || !strings.HasPrefix(filepath.Base(got), "pgguard-haproxy-") {
		t.Fatalf("socket of a %d-byte directory: %s (%d bytes)", len(long.Dir), got, len(got))
	}
	if other := (Layout{Dir: long.Dir + "x"}).haproxySocket(); other == got {
		t.Fatalf("two directories share the socket %s", got)
	}
}
