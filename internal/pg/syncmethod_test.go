package pg

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInitSyncMethod(t *testing.T) {
	dir := t.TempDir()
	if got := initSyncMethod(dir, false, "6.1.0-18-amd64"); got != "" {
		t.Errorf("no PG_VERSION: %q, want the default", got)
	}
	for _, tc := range []struct {
		version string
		renamed bool
		kernel  string
		want    string
	}{
		{"15\n", false, "6.1.0-18-amd64", "syncfs"},
		{"14\n", false, "5.8.0", "syncfs"},
		{"16\n", false, "6.18.44-fc-v1252", "syncfs"},
		{"13\n", false, "6.1.0", ""},             // no such setting before 14
		{"15\n", true, "6.1.0", ""},              // a fork's server may not know it
		{"15\n", false, "5.4.0-150-generic", ""}, // syncfs errors unreported
		{"15\n", false, "4.19.0", ""},
		{"15\n", false, "", ""},
		{"not a version\n", false, "6.1.0", ""},
	} {
		if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte(tc.version), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := initSyncMethod(dir, tc.renamed, tc.kernel); got != tc.want {
			t.Errorf("PG_VERSION %q, renamed %v, kernel %q: %q, want %q", tc.version, tc.renamed, tc.kernel, got, tc.want)
		}
	}
	if kernelRelease() == "" {
		t.Error("uname gave no kernel release")
	}
}
