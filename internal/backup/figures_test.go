package backup_test

import (
	"testing"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/repo"
)

func TestFiguresSurviveTheManifestLabel(t *testing.T) {
	f := backup.Figures{BytesRead: 123456789, BytesNew: 4567, Files: 976, BadPages: 2, PacksReused: 3}
	if got := backup.ParseFigures(f.Label()); got != f {
		t.Errorf("ParseFigures(Label()) = %+v, want %+v", got, f)
	}
	s := backup.Summarize(repo.Header{ID: "x", Kind: repo.KindIncr, StartLSN: 0x1_0000_0028, Label: f.Label(), DatabaseSize: 99})
	if s.StoredSize != 4567 || s.BytesRead != 123456789 || s.StartLSN != "1/28" || s.Size != 99 {
		t.Errorf("summary %+v: want stored 4567, read 123456789, start 1/28, size 99", s)
	}
	if got := backup.ParseFigures("free text from someone else"); got != (backup.Figures{}) {
		t.Errorf("a label without figures parsed as %+v, want zeros", got)
	}
}
