package walstream_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddRowGoesIntoTheTableNotTheFilesEnd(t *testing.T) {
	file := filepath.Join(t.TempDir(), "report.md")
	table := "| when | latency |\n| --- | --- |\n| old | 1 ms |\n" + rowsEnd + "\n\n## A later run of another bench\n\ntext\n"
	if err := os.WriteFile(file, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := addRow(file, "| new | 2 ms |"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	want := "| when | latency |\n| --- | --- |\n| old | 1 ms |\n| new | 2 ms |\n" + rowsEnd + "\n\n## A later run of another bench\n\ntext\n"
	if string(got) != want {
		t.Fatalf("report after addRow:\n%s\nwant:\n%s", got, want)
	}
}

func TestAddRowWithoutTheMarkerChangesNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "report.md")
	before := "| when | latency |\n| --- | --- |\n| old | 1 ms |\n"
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	err := addRow(file, "| new | 2 ms |\n")
	if err == nil || !strings.Contains(err.Error(), rowsEnd) {
		t.Fatalf("addRow without the marker: err = %v, want one naming %q", err, rowsEnd)
	}
	if got, _ := os.ReadFile(file); string(got) != before {
		t.Fatalf("the file changed:\n%s", got)
	}
}
