package repocopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster/objects"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

func initRepo(t testing.TB, be storage.Backend, pass string, edit func(*repo.Options)) *repo.Repository {
	t.Helper()
	return testrepo.Init(t, be, pass, func(o *repo.Options) {
		o.BlockSize = 16 * 1024
		o.PackSize = 1 << 20
		o.Runtime = repo.Runtime{Parallel: 4}
		if edit != nil {
			edit(o)
		}
	})
}

func openRepo(t testing.TB, be storage.Backend, pass string) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, repo.Passphrase(pass), repo.Runtime{Parallel: 4})
	if err != nil {
		t.Fatalf("open %s: %v", be.Location(), err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// label is a backup_label that starts in segment seg of timeline 1.
func label(seg int) []byte {
	return fmt.Appendf(nil, "START WAL LOCATION: 0/%X028 (file 00000001000000000000%04X)\nCHECKPOINT LOCATION: 0/%X060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-23 10:00:00 UTC\nLABEL: test\nSTART TIMELINE: 1\n",
		seg<<24>>12, seg, seg<<24>>12)
}

// writeBackup stores files (path → content) as one backup started at
// start, taking unchanged parts from prev for an incremental.
func writeBackup(t testing.TB, r *repo.Repository, kind repo.Kind, start time.Time, prev *repo.Manifest, files map[string][]byte) *repo.Manifest {
	t.Helper()
	ctx := context.Background()
	hdr := repo.Header{Kind: kind, StartTime: start, StartLSN: 1, Timeline: 1, SystemID: 7}
	if prev != nil {
		hdr.Parent = prev.ID
	}
	b, err := r.NewBackup(hdr, prev)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		w, err := b.CreateFile(ctx, repo.FileMeta{Path: p, Mode: 0o600, MTime: start})
		if err != nil {
			t.Fatal(err)
		}
		data := files[p]
		// An incremental keeps the first half of a file its parent had
		// unchanged, as the backup driver does for unchanged pages.
		if pf := prevFile(prev, p); kind == repo.KindIncr && pf != nil && pf.Size >= int64(len(data)/2) && len(data) > 2*repo.PageSize {
			half := int64(len(data)/2) / repo.PageSize * repo.PageSize
			if err := w.Skip(half); err != nil {
				t.Fatal(err)
			}
			data = data[half:]
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	hdr = b.Header()
	hdr.StopTime = start.Add(time.Minute)
	m, err := b.Finish(ctx, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func prevFile(m *repo.Manifest, path string) *repo.FileEntry {
	if m == nil {
		return nil
	}
	return m.File(path)
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// fixture is a source repository with two backups and archived WAL.
type fixture struct {
	be         *storage.Mem
	src        *repo.Repository
	b1, b2     *repo.Manifest
	content    map[string]map[string][]byte // backup id → path → content
	walContent map[string][]byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{be: storage.NewMem(), content: map[string]map[string][]byte{}, walContent: map[string][]byte{}}
	f.src = initRepo(t, f.be, "source passphrase", nil)
	big := randomBytes(1, 3<<20)
	files1 := map[string][]byte{
		"backup_label":      label(2),
		"base/1/1000":       big,
		"base/1/1001":       make([]byte, 256<<10), // zeros: many equal blocks
		"global/pg_control": randomBytes(2, 8192),
	}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.b1 = writeBackup(t, f.src, repo.KindFull, t0, nil, files1)
	f.content[f.b1.ID] = files1
	changed := slices.Clone(big)
	copy(changed[len(changed)-(512<<10):], randomBytes(3, 512<<10)) // the last 512 KiB changed
	files2 := map[string][]byte{
		"backup_label":      label(5),
		"base/1/1000":       changed,
		"base/1/1001":       make([]byte, 256<<10),
		"base/1/1002":       randomBytes(4, 100<<10),
		"global/pg_control": randomBytes(5, 8192),
	}
	f.b2 = writeBackup(t, f.src, repo.KindIncr, t0.Add(time.Hour), f.b1, files2)
	f.content[f.b2.ID] = files2
	for seg := 1; seg <= 8; seg++ {
		name := fmt.Sprintf("00000001000000000000%04X", seg)
		f.walContent[name] = randomBytes(uint64(100+seg), 64<<10)
	}
	f.walContent["00000002.history"] = []byte("1\t0/8000000\tno recovery target specified\n")
	for name, data := range f.walContent {
		if err := f.src.PutWAL(context.Background(), name, data); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// checkCopy reads every file of every copied backup back from dst and
// compares it with what was backed up, then verifies dst.
func (f *fixture) checkCopy(t *testing.T, dst *repo.Repository, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		m, err := dst.LoadManifest(ctx, id)
		if err != nil {
			t.Fatalf("copied backup: %v", err)
		}
		sm, _ := f.src.LoadManifest(ctx, id)
		if h1, h2 := fmt.Sprintf("%+v", m.Header), fmt.Sprintf("%+v", sm.Header); h1 != h2 {
			t.Errorf("backup %s: header changed by the copy:\n%+v\n%+v", id, m.Header, sm.Header)
		}
		if len(m.Files) != len(f.content[id]) {
			t.Errorf("backup %s: %d files, want %d", id, len(m.Files), len(f.content[id]))
		}
		for path, want := range f.content[id] {
			rc, err := dst.ReadFile(ctx, m, path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read %s of %s from the copy: %v", path, id, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s of %s: the copy differs (%d bytes, want %d)", path, id, len(got), len(want))
			}
		}
	}
	var problems []string
	if err := dst.Verify(ctx, "", func(p repo.Problem) { problems = append(problems, p.String()) }); err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("verify of the copy: %s", strings.Join(problems, "\n"))
	}
}

// hasPack reports whether be holds a pack object.
func hasPack(be storage.Backend) bool {
	found := false
	_ = be.List(context.Background(), "packs/", func(storage.FileInfo) error {
		found = true
		return nil
	})
	return found
}

func objectSizes(t *testing.T, be storage.Backend) []string {
	t.Helper()
	var names []string
	if err := be.List(context.Background(), "", func(fi storage.FileInfo) error {
		names = append(names, fmt.Sprintf("%s %d", fi.Name, fi.Size))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func TestCopyBetweenRepositoriesWithDifferentKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dstBE := storage.NewMem()
	// Another key, another compression and block size: every block is
	// re-identified and re-encoded.
	dst := initRepo(t, dstBE, "destination passphrase", func(o *repo.Options) {
		o.Compression = repo.CompressLZ4
		o.BlockSize = 8192
		o.Cipher = repo.XChaCha20Poly1305
	})

	// The newest backup first, with the WAL from its start to the end.
	res, err := Copy(ctx, f.src, dst, Options{Newest: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Copied, []string{f.b2.ID}) || res.BlocksCopied == 0 || res.BytesStored == 0 {
		t.Fatalf("first copy: %+v", res)
	}
	wal, _ := dst.ListWAL(ctx, "")
	wantWAL := []string{"000000010000000000000005", "000000010000000000000006", "000000010000000000000007", "000000010000000000000008", "00000002.history"}
	if !slices.Equal(wal, wantWAL) {
		t.Fatalf("WAL copied for the newest backup: %v, want %v", wal, wantWAL)
	}
	f.checkCopy(t, dst, f.b2.ID)
	t.Logf("newest: %d blocks stored (%d B), %d skipped, %d B read, %d WAL", res.BlocksCopied, res.BytesStored, res.BlocksSkipped, res.BytesRead, res.WALCopied)

	// Then everything: the older backup shares most blocks with the newer
	// one, and the pairs of the first copy spare reading them.
	res, err = Copy(ctx, f.src, dst, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Copied, []string{f.b1.ID}) || !slices.Equal(res.Present, []string{f.b2.ID}) {
		t.Fatalf("copy --all: copied %v, present %v", res.Copied, res.Present)
	}
	if res.BlocksKnown == 0 || res.BlocksCopied == 0 {
		t.Fatalf("copy --all: want blocks skipped without reading and some new ones: %+v", res)
	}
	if res.BytesRead >= int64(len(f.content[f.b1.ID]["base/1/1000"])) {
		t.Errorf("copy --all read %d bytes: the shared blocks should not be read again", res.BytesRead)
	}
	wal, _ = dst.ListWAL(ctx, "")
	if len(wal) != 8 || slices.Contains(wal, "000000010000000000000001") {
		t.Fatalf("WAL after copy --all: %v (want segments 2 to 8 and the history file)", wal)
	}
	for _, name := range wal {
		got, err := dst.GetWAL(ctx, name)
		if err != nil || !bytes.Equal(got, f.walContent[name]) {
			t.Fatalf("WAL %s in the copy: %v", name, err)
		}
	}
	f.checkCopy(t, dst, f.b1.ID, f.b2.ID)
	t.Logf("all: %d blocks stored, %d skipped (%d unread), %d B read", res.BlocksCopied, res.BlocksSkipped, res.BlocksKnown, res.BytesRead)

	// Again: nothing is read or stored, and the result says so.
	before := objectSizes(t, dstBE)
	dst2 := openRepo(t, dstBE, "destination passphrase") // a new process: pairs come from the manifests
	res, err = Copy(ctx, f.src, dst2, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NothingNew() || res.BytesStored != 0 || res.BytesRead != 0 || len(res.Present) != 2 || res.WALSkipped != 8 {
		t.Fatalf("second copy: want nothing read or stored: %+v", res)
	}
	if after := objectSizes(t, dstBE); !slices.Equal(before, after) {
		t.Fatalf("second copy changed the destination:\n%v\n%v", before, after)
	}
	// The copy is itself a source: copying back into a third repository
	// gives the same content.
	third := initRepo(t, storage.NewMem(), "third", nil)
	if _, err := Copy(ctx, dst2, third, Options{All: true, WAL: WALAll}); err != nil {
		t.Fatal(err)
	}
	f.checkCopy(t, third, f.b1.ID, f.b2.ID)
}

func TestInterruptedCopyResumes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dstBE := storage.NewMem()
	// One packer, so that packs fill and are saved (without an index yet)
	// before the interruption.
	dst := initRepo(t, dstBE, "destination passphrase", func(o *repo.Options) { o.Runtime.Parallel = 1 })
	refBE := storage.NewMem()
	full, err := Copy(ctx, f.src, initRepo(t, refBE, "x", nil), Options{All: true})
	if err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := Copy(cctx, f.src, dst, Options{All: true, Progress: func(r Result) {
		if r.BlocksCopied < full.BlocksCopied*2/3 || cctx.Err() != nil {
			return
		}
		// Full packs are saved in the background: on a busy machine none
		// may be saved yet (a CI run resumed with no pack to reuse).
		// Hold the copy until one is, for at most 30 s.
		for deadline := time.Now().Add(30 * time.Second); !hasPack(dstBE) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond) // polling the destination, with the deadline
		}
		cancel()
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted copy: err = %v, want context.Canceled", err)
	}
	if ids, _ := dst.ListBackups(ctx); len(ids) != 0 {
		t.Fatalf("an interrupted copy wrote manifests %v", ids)
	}
	if names := objectSizes(t, dstBE); slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "locks/") }) {
		t.Fatalf("an interrupted copy left its lock: %v", names)
	}
	t.Logf("interrupted after %d of %d blocks", res.BlocksCopied, full.BlocksCopied)

	// A new process resumes: the packs saved before the interruption are
	// indexed and their blocks not stored again.
	dst = openRepo(t, dstBE, "destination passphrase")
	res2, err := Copy(ctx, f.src, dst, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Copied) != 2 || res2.PacksReused == 0 || res2.BlocksSkipped-res2.BlocksKnown == 0 || res2.BlocksCopied >= full.BlocksCopied {
		t.Fatalf("resumed copy: %+v (a full copy stores %d blocks)", res2, full.BlocksCopied)
	}
	// Blocks still in memory at the interruption are lost and stored
	// again; those already in saved packs are not.
	if got, want := objects.PackBytes(t, dstBE), objects.PackBytes(t, refBE); got > want*11/10 {
		t.Errorf("interrupted + resumed copy left %d bytes of packs, one copy %d", got, want)
	}
	t.Logf("resume: %d packs reused, %d blocks skipped, %d stored", res2.PacksReused, res2.BlocksSkipped, res2.BlocksCopied)
	f.checkCopy(t, dst, f.b1.ID, f.b2.ID)
}

func TestCopyRefusesBadRequestsWithoutWriting(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dstBE := storage.NewMem()
	dst := initRepo(t, dstBE, "destination passphrase", nil)
	// A backup in the destination under the id of the source's first
	// backup, with other content.
	impostor := *f.b1
	impostor.Files = []repo.FileEntry{}
	if err := dst.PutManifest(ctx, &impostor); err != nil {
		t.Fatal(err)
	}
	srcBefore, dstBefore := objectSizes(t, f.be), objectSizes(t, dstBE)
	cases := []struct {
		name    string
		opts    Options
		mention string
	}{
		{"nothing chosen", Options{}, "choose what to copy"},
		{"two selections", Options{All: true, Newest: 1}, "only one"},
		{"unknown backup", Options{BackupIDs: []string{"20200101T000000Z-00000000"}}, "not in the source"},
		{"bad WAL mode", Options{All: true, WAL: "some"}, "--wal"},
		{"backup in both with other content", Options{BackupIDs: []string{f.b1.ID}}, "not a copy"},
	}
	for _, c := range cases {
		_, err := Copy(ctx, f.src, dst, c.opts)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: err = %v, want an input error mentioning %q", c.name, err, c.mention)
		}
	}
	if !slices.Equal(srcBefore, objectSizes(t, f.be)) || !slices.Equal(dstBefore, objectSizes(t, dstBE)) {
		t.Fatal("a refused copy changed a repository")
	}
	if _, err := Copy(ctx, f.src, f.src, Options{All: true}); err == nil || !strings.Contains(err.Error(), "same repository") {
		t.Fatalf("copy into itself: %v", err)
	}
}

// A file-level clone of a repository (same master key, another location)
// shares block ids: the copy finds blocks by id without pairing and reads
// only what the clone lacks.
func TestCopyToACloneWithTheSameKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	cloneBE, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Only the key objects and config: an empty repository with the same key.
	for _, prefix := range []string{"keys/", "config"} {
		err := f.be.List(ctx, prefix, func(fi storage.FileInfo) error {
			rc, err := f.be.Load(ctx, fi.Name, 0, 0)
			if err != nil {
				return err
			}
			defer rc.Close()
			return cloneBE.Save(ctx, fi.Name, rc, fi.Size)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	clone := openRepo(t, cloneBE, "source passphrase")
	if !clone.SameBlockIDs(f.src) {
		t.Fatal("a clone does not share block ids")
	}
	res, err := Copy(ctx, f.src, clone, Options{BackupIDs: []string{f.b1.ID}})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := Copy(ctx, f.src, clone, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Copied) != 1 || res2.BlocksKnown == 0 || res2.BytesRead-res2.WALBytesRead >= res.BytesRead-res.WALBytesRead {
		t.Fatalf("second copy into the clone should skip shared blocks unread: first %+v, second %+v", res, res2)
	}
	f.checkCopy(t, clone, f.b1.ID, f.b2.ID)
}

// With Parents, an incremental brings the backup it was taken against.
func TestCopyWithParents(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if f.b2.Parent != f.b1.ID {
		t.Fatalf("fixture: incremental's parent is %q, want %s", f.b2.Parent, f.b1.ID)
	}
	dst := initRepo(t, storage.NewMem(), "destination passphrase", nil)
	res, err := Copy(ctx, f.src, dst, Options{BackupIDs: []string{f.b2.ID}, Parents: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Copied, []string{f.b1.ID, f.b2.ID}) {
		t.Fatalf("copy of an incremental with its parents copied %v", res.Copied)
	}
	f.checkCopy(t, dst, f.b1.ID, f.b2.ID)
}

// failingLoad fails every load of an object whose name ends in suffix,
// and records the WAL objects asked for.
type failingLoad struct {
	storage.Backend
	suffix string
	mu     sync.Mutex
	wal    []string
}

var errInjected = errors.New("injected load failure")

func (b *failingLoad) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "wal/") {
		b.mu.Lock()
		b.wal = append(b.wal, name[strings.LastIndexByte(name, '/')+1:])
		b.mu.Unlock()
	}
	if strings.HasSuffix(name, b.suffix) {
		return nil, errInjected
	}
	return b.Backend.Load(ctx, name, offset, length)
}

// The WAL copy stops at the first failure: its error is returned, no WAL
// file after it is started, and no manifest is written.
func TestWALCopyStopsAtTheFirstFailure(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const bad = "000000010000000000000004"
	for _, parallel := range []int{1, 4} {
		t.Run(fmt.Sprintf("parallel %d", parallel), func(t *testing.T) {
			be := &failingLoad{Backend: f.be, suffix: bad}
			src := openRepo(t, be, "source passphrase")
			dst := initRepo(t, storage.NewMem(), "destination passphrase", nil)
			_, err := Copy(ctx, src, dst, Options{All: true, WAL: WALAll, Parallel: parallel})
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "source: get WAL "+bad) {
				t.Fatalf("err = %v, want the injected failure of %s", err, bad)
			}
			got, err := dst.ListWAL(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(got, bad) {
				t.Fatalf("destination has %s, whose load failed", bad)
			}
			if parallel == 1 {
				// One at a time, in name order: nothing after the failure
				// is even asked for.
				before := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"}
				if !slices.Equal(got, before) {
					t.Fatalf("destination WAL after the failure: %v, want %v", got, before)
				}
				if asked := slices.Compact(slices.Clone(be.wal)); !slices.Equal(asked, append(before, bad)) {
					t.Fatalf("WAL loaded from the source: %v, want those up to %s and no more", asked, bad)
				}
			}
			if ids, _ := dst.ListBackups(ctx); len(ids) != 0 {
				t.Fatalf("a failed copy wrote manifests %v", ids)
			}
		})
	}
}
