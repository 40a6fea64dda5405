package testcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// Listing describes the tree under dir, one sorted line a path (relative
// to dir, then what describe says of it), so that a test can prove the
// tree unchanged; a dir that does not exist is "(absent)".
func Listing(t testing.TB, dir string, describe func(fs.FileInfo) string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				lines = append(lines, "(absent)")
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, rel+" "+describe(fi))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// SizeOf describes a path of a Listing by its size.
func SizeOf(fi fs.FileInfo) string { return fmt.Sprint(fi.Size()) }

// HasLabels reports whether the metric m carries every name, value pair
// of labels (name, value, name, value, …).
func HasLabels(m *dto.Metric, labels ...string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if have[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}
