package jobs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestResultRoundTrip(t *testing.T) {
	want := Result{Kind: KindIncr, BackupID: "20261123T020000Z", BytesRead: 1 << 30, BytesStored: 12345}
	var buf bytes.Buffer
	if err := WriteResult(&buf, Result{Version: 7, Kind: want.Kind, BackupID: want.BackupID, BytesRead: want.BytesRead, BytesStored: want.BytesStored}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"version":1`) {
		t.Fatalf("the message does not carry this build's version whatever the caller set: %s", buf.String())
	}
	got, err := ReadResult(&buf)
	want.Version = ResultVersion
	if err != nil || got != want {
		t.Fatalf("read back %+v, %v; want %+v", got, err, want)
	}
}

func TestReadResultRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		noResult bool
		want     string
	}{
		{"nothing written: no result, told apart from a bad message", "", true, ""},
		{"only a newline: no result", "\n", true, ""},
		{"a newer version: refused, saying which versions and what to do", `{"version":2,"kind":"full","bytes_read":5}`, false, "version 2, this agent reads version 1"},
		{"no version: not a message of ours", `{"kind":"full","bytes_read":5}`, false, "without a version"},
		{"a message cut short: malformed, not empty", `{"version":1,"kind":"fu`, false, "malformed"},
		{"human output: malformed", "backup done in 3s\n", false, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadResult(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("accepted %q as %+v", tc.in, got)
			}
			if errors.Is(err, ErrNoResult) != tc.noResult {
				t.Fatalf("error %v: ErrNoResult %v, want %v", err, errors.Is(err, ErrNoResult), tc.noResult)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// The agent reads while the command runs: a process the command started
// may keep the writing end open, and the message must not wait for it.
func TestReadResultDoesNotWaitForTheEndOfThePipe(t *testing.T) {
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	defer wr.Close()
	if err := WriteResult(wr, Result{Kind: KindFull, BackupID: "b1"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		res, err := ReadResult(rd)
		if err == nil && res.BackupID != "b1" {
			err = errors.New("read " + res.BackupID)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadResult waited for the writing end to close")
	}
}

func TestReportTo(t *testing.T) {
	if err := reportTo("", Result{Kind: KindFull}); err != nil {
		t.Fatalf("a command not run as a job reported: %v", err)
	}
	for _, bad := range []string{"x", "1", "-4"} {
		if err := reportTo(bad, Result{}); err == nil || !strings.Contains(err.Error(), ResultFDEnv) {
			t.Fatalf("%s=%s: %v, want an error naming the variable", ResultFDEnv, bad, err)
		}
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// reportTo closes the descriptor it is given: give it a copy, not
	// one an *os.File of this test owns.
	fd, err := syscall.Dup(int(wr.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	wr.Close()
	if err := reportTo(strconv.Itoa(fd), Result{Kind: KindCopy, BackupID: "b2", BytesStored: 9}); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(bytes.NewReader(b))
	if err != nil || got.Kind != KindCopy || got.BackupID != "b2" || got.BytesStored != 9 {
		t.Fatalf("reported %q: %+v, %v", b, got, err)
	}
}
