package logrestore

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func seg(name string, sec int) repo.WALInfo {
	return repo.WALInfo{Name: name, Timeline: name[:8], Archived: t0.Add(time.Duration(sec) * time.Second)}
}

func TestSelect(t *testing.T) {
	infos := []repo.WALInfo{
		seg("000000010000000000000001", 10),
		seg("000000010000000000000002", 20),
		seg("000000010000000000000003", 30),
		seg("00000002.history", 35),
		seg("000000020000000000000003", 40),
		seg("000000020000000000000004", 50),
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	cases := []struct {
		name      string
		from, to  int
		want      []string
		history   []string
		noteHas   string
		wantError string
	}{
		{"range inside one segment's span gives that segment", 11, 19, []string{"000000010000000000000002"}, nil, "", ""},
		{"range across segments gives every segment that holds it", 15, 25, []string{"000000010000000000000002", "000000010000000000000003"}, nil, "", ""},
		{"range across a timeline switch brings the history file", 25, 45,
			[]string{"000000010000000000000003", "000000020000000000000003", "000000020000000000000004"}, []string{"00000002.history"}, "", ""},
		{"range past the newest archived segment says so", 45, 90, []string{"000000020000000000000004"}, []string{"00000002.history"}, "not archived yet", ""},
		{"range after everything archived is an error", 60, 90, nil, nil, "", "nothing to restore"},
		{"reversed range is an error", 30, 20, nil, nil, "", "not after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Select(infos, at(tc.from), at(tc.to))
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sel.Segments, tc.want) || !reflect.DeepEqual(sel.History, tc.history) {
				t.Fatalf("selection = %v + %v, want %v + %v", sel.Segments, sel.History, tc.want, tc.history)
			}
			if !strings.Contains(sel.Note, tc.noteHas) {
				t.Fatalf("note %q lacks %q", sel.Note, tc.noteHas)
			}
		})
	}
}

// A link planted in the target directory, under the temporary name or the
// final one, dangling or not, is refused and what it points at is left
// as it was.
func TestWriteNewFollowsNoLink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	const name = "000000010000000000000001"
	for _, c := range []struct{ link, to string }{
		{"." + name + ".tmp", victim},
		{"." + name + ".tmp", filepath.Join(outside, "new")},
		{name, victim},
	} {
		if err := os.Symlink(c.to, filepath.Join(dir, c.link)); err != nil {
			t.Fatal(err)
		}
		if err := writeNew(root, name, []byte("wal")); err == nil {
			t.Errorf("link %s → %s: written through", c.link, c.to)
		}
		if err := os.Remove(filepath.Join(dir, c.link)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
		t.Errorf("victim now %q (%v), want it unchanged", b, err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "new")); err == nil {
		t.Errorf("a file was created outside the target through a dangling link")
	}
	if err := writeNew(root, name, []byte("wal")); err != nil {
		t.Fatalf("plain write: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "wal" {
		t.Errorf("written file holds %q (%v)", b, err)
	}
}
