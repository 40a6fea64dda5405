package source

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// dirSink materialises a backup into a directory, the way a restore of the
// repository will: full files are written, incremental files are the
// previous backup's copy (prevDir) with the passed pages laid over it.
// Tablespace links are re-pointed into tsRoot.
type dirSink struct {
	dir, prevDir, tsRoot string

	mu      sync.Mutex
	files   map[string]PrevFile // for the next incremental
	actions map[Action]int
	relSize int64 // sum of relation file sizes
}

func newDirSink(dir, prevDir, tsRoot string) *dirSink {
	return &dirSink{dir: dir, prevDir: prevDir, tsRoot: tsRoot, files: map[string]PrevFile{}, actions: map[Action]int{}}
}

type dirWriter struct {
	s *dirSink
	e Entry
	f *os.File
}

func (s *dirSink) target(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

func (s *dirSink) StartFile(_ context.Context, e Entry, p Plan) (FileWriter, error) {
	s.mu.Lock()
	s.actions[p.Action]++
	if _, ok := ParseRelFile(e.Path); ok {
		s.relSize += e.Size
	}
	s.mu.Unlock()
	dst := s.target(e.Path)
	switch {
	case e.Mode.IsDir():
		return &dirWriter{s: s, e: e}, os.MkdirAll(dst, 0o700)
	case e.Mode&fs.ModeSymlink != 0:
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		target := e.LinkTarget
		if strings.HasPrefix(e.Path, "pg_tblspc/") {
			target = filepath.Join(s.tsRoot, filepath.Base(e.Path))
			if err := os.MkdirAll(target, 0o700); err != nil {
				return nil, err
			}
		}
		return &dirWriter{s: s, e: e}, os.Symlink(target, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, err
	}
	if p.Action == ActionFromPrevious || p.Action == ActionScan || p.Action == ActionReadBlocks {
		if err := copyFile(filepath.Join(s.prevDir, filepath.FromSlash(e.Path)), dst); err != nil {
			return nil, fmt.Errorf("take %s from previous backup: %w", e.Path, err)
		}
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &dirWriter{s: s, e: e, f: f}, nil
}

func (w *dirWriter) WriteChunk(c Chunk) error {
	_, err := w.f.WriteAt(c.Data, c.Offset)
	return err
}

func (w *dirWriter) Finish(r FileResult) error {
	if w.f == nil {
		return nil
	}
	w.s.mu.Lock()
	w.s.files[w.e.Path] = PrevFile{Size: r.Size, ModTime: w.e.ModTime}
	w.s.mu.Unlock()
	if err := w.f.Truncate(r.Size); err != nil {
		return err
	}
	return w.f.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		default:
			return copyFile(p, target)
		}
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// previous returns what the next incremental needs to know about this one.
func (s *dirSink) previous(b *Backup) *Previous {
	return &Previous{StartLSN: b.StartLSN, StartTime: b.StartTime, Timeline: b.Timeline, Files: s.files}
}

// finishRestore writes the label files, re-points tablespace_map at the
// restored tablespace directories, and sets up archive recovery from
// archiveDir.
func (s *dirSink) finishRestore(t *testing.T, stop StopResult, archiveDir string) {
	t.Helper()
	if err := os.WriteFile(s.target("backup_label"), stop.BackupLabel, 0o600); err != nil {
		t.Fatal(err)
	}
	if len(stop.TablespaceMap) > 0 {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(stop.TablespaceMap)), "\n") {
			oid, _, _ := strings.Cut(l, " ")
			lines = append(lines, oid+" "+filepath.Join(s.tsRoot, oid))
		}
		if err := os.WriteFile(s.target("tablespace_map"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.target("recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("\nrestore_command = 'cp %s/%%f \"%%p\"'\nrecovery_target_action = 'promote'\n", archiveDir)
	f, err := os.OpenFile(s.target("postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
}
