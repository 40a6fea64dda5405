package testcluster

import (
	"os"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func TestListingAndHasLabels(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"a": "xyz", "b/c": "hello"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := Listing(t, dir, func(fi os.FileInfo) string {
		if fi.IsDir() {
			return "dir"
		}
		return SizeOf(fi)
	})
	if want := ". dir\na 3\nb dir\nb/c 5"; got != want {
		t.Fatalf("listing:\n%s\nwant:\n%s", got, want)
	}
	if got := Listing(t, filepath.Join(dir, "missing"), SizeOf); got != "(absent)" {
		t.Fatalf("listing of a missing directory = %q, want (absent)", got)
	}

	m := &dto.Metric{Label: []*dto.LabelPair{
		pair("node", "n1"),
		pair("kind", "full"),
	}}
	for _, tc := range []struct {
		labels []string
		want   bool
	}{
		{nil, true},
		{[]string{"node", "n1"}, true},
		{[]string{"kind", "full", "node", "n1"}, true},
		{[]string{"node", "n2"}, false},
		{[]string{"node", "n1", "absent", "x"}, false},
	} {
		if got := HasLabels(m, tc.labels...); got != tc.want {
			t.Errorf("HasLabels(%v) = %v, want %v", tc.labels, got, tc.want)
		}
	}
}

func pair(name, value string) *dto.LabelPair { return &dto.LabelPair{Name: &name, Value: &value} }
