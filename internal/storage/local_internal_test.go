package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestClassifyFS(t *testing.T) {
	pathErr := func(errno syscall.Errno) error {
		return &fs.PathError{Op: "open", Path: "/repo/x", Err: errno}
	}
	cases := []struct {
		name string
		err  error
		want func(error) bool
		hint string
	}{
		{"missing file is not-exist", pathErr(syscall.ENOENT), IsNotExist, ""},
		{"a file where a directory should be is not-exist", pathErr(syscall.ENOTDIR), IsNotExist, ""},
		{"permission denied is permanent and says what to check", pathErr(syscall.EACCES), IsPermanent, "permissions"},
		{"read-only filesystem is permanent", pathErr(syscall.EROFS), IsPermanent, "read-only"},
		{"full disk is permanent and says to free space", pathErr(syscall.ENOSPC), IsPermanent, "free space"},
		{"I/O error of a network filesystem is retryable", pathErr(syscall.EIO), IsRetryable, ""},
		{"stale NFS handle is retryable", pathErr(syscall.ESTALE), IsRetryable, ""},
		{"an unknown error is permanent", errors.New("weird"), IsPermanent, ""},
		{"cancellation is neither kind but stays context.Canceled", fmt.Errorf("copy: %w", context.Canceled),
			func(err error) bool {
				return errors.Is(err, context.Canceled) && !IsRetryable(err) && !IsPermanent(err)
			}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyFS("save", "obj", tc.err)
			if !tc.want(got) {
				t.Fatalf("classifyFS(%v) = %v: wrong kind", tc.err, got)
			}
			if !errors.Is(got, tc.err) && !errors.Is(got, context.Canceled) {
				t.Fatalf("classified error %v lost its cause %v", got, tc.err)
			}
			if tc.hint != "" && !strings.Contains(got.Error(), tc.hint) {
				t.Fatalf("error %q should tell the operator about %q", got, tc.hint)
			}
		})
	}
}
