package repo

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierrec/lz4/v4"

	"github.com/pgguard/pgguard/internal/storage"
)

// PageSize is the PostgreSQL page size blocks are aligned on.
const PageSize = 8192

// formatVersion is what Init writes. Version 2 derives one encryption key
// per algorithm; version 1 repositories (one shared key) are still read
// and written.
const formatVersion = 2

// readableVersions are the format versions this pgguard opens, newest
// first.
var readableVersions = []int{2, 1}

// Options are the format defaults fixed by Init and stored in the config.
type Options struct {
	Cipher           Cipher
	Compression      Compression
	CompressionLevel int   // zstd level 1..22
	BlockSize        int   // bytes, a multiple of PageSize
	PackSize         int64 // target pack size in bytes
	KDF              KDFParams
	Runtime          Runtime
	// version overrides formatVersion (tests of older repositories).
	version int
}

// DefaultOptions: XChaCha20-Poly1305 (192-bit random nonces: no nonce
// budget to watch, unlike AES-GCM's 96-bit ones), zstd level 3, 128 KiB
// blocks, 32 MiB packs, argon2id.
func DefaultOptions() Options {
	return Options{
		Cipher:           XChaCha20Poly1305,
		Compression:      CompressZstd,
		CompressionLevel: 3,
		BlockSize:        128 * 1024,
		PackSize:         32 << 20,
		KDF:              DefaultKDFParams(),
	}
}

// Validate reports the first invalid option.
func (o Options) Validate() error {
	if _, err := o.Cipher.code(); err != nil {
		return err
	}
	if _, err := o.Compression.code(); err != nil {
		return err
	}
	if o.Compression == CompressZstd && (o.CompressionLevel < 1 || o.CompressionLevel > 22) {
		return fmt.Errorf("zstd compression level %d out of range 1..22", o.CompressionLevel)
	}
	if o.BlockSize < PageSize || o.BlockSize%PageSize != 0 || o.BlockSize > 16<<20 {
		return fmt.Errorf("block size %d must be a multiple of %d up to 16 MiB", o.BlockSize, PageSize)
	}
	if o.PackSize < 1<<20 || o.PackSize > 1<<30 {
		return fmt.Errorf("pack size %d must be between 1 MiB and 1 GiB", o.PackSize)
	}
	return nil
}

// Runtime tunes one process's use of a repository; nothing here is stored.
type Runtime struct {
	Parallel       int              // concurrent packers and block fetches; default 4
	Now            func() time.Time // clock; default time.Now
	Host           string           // for lock objects; default os.Hostname
	PID            int              // for lock objects; default os.Getpid
	LockStaleAfter time.Duration    // default 30m
	LockRefresh    time.Duration    // default 5m
	IndexEvery     int              // write an index object every N saved packs; default 32
	// WALOnly opens the repository without loading the block index: for
	// the WAL archive commands, which store and fetch WAL objects only and
	// run once per segment (the index of a large repository is tens of
	// MiB and a fraction of a second to load). Backups, restores and
	// everything else that touches blocks must not use it.
	WALOnly bool
	// StateDir is where this host remembers each repository's head
	// generation (default: the user's cache directory, pgguard/).
	StateDir string
	// TempDir holds the unlinked temporary files of a large block index
	// table and of packs being filled ("": os.TempDir(), that is $TMPDIR
	// or /tmp). On a tmpfs they take memory, not disk.
	TempDir string
}

func (rt Runtime) withDefaults() Runtime {
	if rt.Parallel < 1 {
		rt.Parallel = 4
	}
	if rt.Now == nil {
		rt.Now = time.Now
	}
	if rt.Host == "" {
		rt.Host, _ = os.Hostname()
	}
	if rt.PID == 0 {
		rt.PID = os.Getpid()
	}
	if rt.LockStaleAfter <= 0 {
		rt.LockStaleAfter = 30 * time.Minute
	}
	if rt.IndexEvery < 1 {
		rt.IndexEvery = 32
	}
	if rt.LockRefresh <= 0 {
		rt.LockRefresh = 5 * time.Minute
	}
	return rt
}

// Config is the decrypted content of the config object.
type Config struct {
	Version          int         `json:"version"`
	ID               string      `json:"id"`
	Created          time.Time   `json:"created"`
	Cipher           Cipher      `json:"cipher"`
	Compression      Compression `json:"compression"`
	CompressionLevel int         `json:"compression_level"`
	BlockSize        int         `json:"block_size"`
	PackSize         int64       `json:"pack_size"`
}

// Repository is an open repository. Its methods are safe for concurrent use.
type Repository struct {
	be     storage.Backend
	cfg    Config
	keys   *keys
	master []byte // only for AddKey
	comp   *compressor
	rt     Runtime

	idx atomic.Pointer[blockIndex]

	wmu       sync.Mutex           // guards pending, unindexed and swapping idx
	pending   map[BlockID]struct{} // blocks in packers or packs being uploaded
	unindexed []*packMeta          // saved packs no index object lists yet
	packers   chan *packer         // pool of open packs
	flushMu   sync.Mutex           // one Flush at a time

	lockMu sync.Mutex
	locks  []*Lock // held by this process
	// missingPacks counts the packs the index names and the storage
	// lacks (LoadIndex).
	missingPacks int
	// headMu guards the head's commit and headProblem (head.go).
	headMu      sync.Mutex
	headProblem string
}

var errNotEmpty = errors.New("not empty")

// Init creates a repository on an empty location and returns it open.
func Init(ctx context.Context, be storage.Backend, key KeySource, opts Options) (*Repository, error) {
	if err := key.validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	var first string
	err := be.List(ctx, "", func(fi storage.FileInfo) error {
		first = fi.Name
		return errNotEmpty
	})
	if errors.Is(err, errNotEmpty) {
		return nil, fmt.Errorf("init repository: %s is not empty (found %q); choose an empty location", be.Location(), first)
	}
	if err != nil {
		return nil, fmt.Errorf("init repository: list %s: %w", be.Location(), err)
	}
	rt := opts.Runtime.withDefaults()
	master := randomBytes(masterKeyBytes)
	ko, err := newKeyObject(key, opts.KDF, opts.Cipher, master, rt.Now())
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	kb, err := json.MarshalIndent(ko, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	version := formatVersion
	if opts.version != 0 {
		version = opts.version
	}
	cfg := Config{
		Version: version, ID: randomHex(16), Created: rt.Now().UTC(),
		Cipher: opts.Cipher, Compression: opts.Compression, CompressionLevel: opts.CompressionLevel,
		BlockSize: opts.BlockSize, PackSize: opts.PackSize,
	}
	r, err := newRepository(be, cfg, master, rt)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := saveBytes(ctx, be, "keys/"+randomHex(16), kb); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := r.saveObject(ctx, "config", "config", cb, compNone); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := r.commitHead(ctx, nil); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	return r, nil
}

// Open unlocks the repository with key and loads its index. A key that
// opens no key object is ErrWrongKey; Open never writes.
func Open(ctx context.Context, be storage.Backend, key KeySource, rt Runtime) (*Repository, error) {
	if err := key.validate(); err != nil {
		return nil, err
	}
	master, err := openMasterKey(ctx, be, key)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	rt = rt.withDefaults()
	// The cipher only matters for writing; blobs name their own cipher.
	// The config is sealed with the keys of its own format version: the
	// newest version whose keys open it is the repository's.
	var r *Repository
	var cb []byte
	opened := 0
	for _, v := range readableVersions {
		if r != nil {
			r.comp.close()
		}
		r, err = newRepository(be, Config{Version: v, Cipher: AES256GCM, Compression: CompressNone}, master, rt)
		if err != nil {
			return nil, fmt.Errorf("open repository: %w", err)
		}
		cb, err = r.loadObject(ctx, "config", "config")
		if err == nil {
			opened = v
			break
		}
		if storage.IsNotExist(err) {
			return nil, fmt.Errorf("open repository %s: key objects but no config: init was interrupted; remove the location's content and init again: %w", be.Location(), err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", be.Location(), err)
	}
	var cfg Config
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("open repository %s: config is damaged: %w", be.Location(), err)
	}
	if !slices.Contains(readableVersions, cfg.Version) {
		return nil, fmt.Errorf("open repository %s: format version %d, this pgguard reads versions %v; upgrade pgguard", be.Location(), cfg.Version, readableVersions)
	}
	if cfg.Version != opened {
		return nil, fmt.Errorf("open repository %s: the config says format version %d but is sealed as version %d: it was tampered with", be.Location(), cfg.Version, opened)
	}
	r.comp.close()
	r, err = newRepository(be, cfg, master, rt)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	if rt.WALOnly {
		return r, nil
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", be.Location(), err)
	}
	if err := r.checkHead(ctx); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", be.Location(), err)
	}
	return r, nil
}

func newRepository(be storage.Backend, cfg Config, master []byte, rt Runtime) (*Repository, error) {
	k, err := deriveKeys(master, cfg.Cipher, cfg.Version)
	if err != nil {
		return nil, err
	}
	level := cfg.CompressionLevel
	if cfg.Compression != CompressZstd {
		level = 3
	}
	comp, err := newCompressor(cfg.Compression, level, cfg.BlockSize)
	if err != nil {
		return nil, err
	}
	r := &Repository{be: be, cfg: cfg, keys: k, master: master, comp: comp, rt: rt,
		pending: map[BlockID]struct{}{}, packers: make(chan *packer, rt.Parallel)}
	for range rt.Parallel {
		r.packers <- &packer{dir: rt.TempDir}
	}
	r.idx.Store(newBlockIndex())
	return r, nil
}

// Close releases the locks this process still holds and the compressor
// resources. It does not flush: call Flush or Backup.Finish first. The
// repository must not be used after Close.
func (r *Repository) Close(ctx context.Context) error {
	r.lockMu.Lock()
	locks := slices.Clone(r.locks)
	r.lockMu.Unlock()
	var errs []error
	for _, l := range locks {
		errs = append(errs, l.Unlock(ctx))
	}
	r.comp.close()
	r.idx.Load().base.close()
	return errors.Join(errs...)
}

// Config returns the repository configuration.
func (r *Repository) Config() Config { return r.cfg }

// Backend returns the store the repository lives on.
func (r *Repository) Backend() storage.Backend { return r.be }

// BlockID returns the id a block with content data has in this repository
// (for delta restore: compare local pages with a manifest without fetching).
func (r *Repository) BlockID(data []byte) BlockID { return r.keys.blockID(data) }

// saveObject compresses (code) and seals plain as [comp][u32 raw len][data]
// and saves it as name.
func (r *Repository) saveObject(ctx context.Context, name, ad string, plain []byte, code byte) error {
	return saveBytes(ctx, r.be, name, r.sealObject(nil, ad, plain, code))
}

// sealObject appends the sealed object of plain to dst. The object is
// compressed and sealed in one buffer (a manifest or a WAL segment is
// MiBs: three copies of it were a backup's largest moment).
func (r *Repository) sealObject(dst []byte, ad string, plain []byte, code byte) []byte {
	s := r.keys.sealer
	start := len(dst)
	at := start + blobHeaderLen(s.code) // where the sealed plaintext starts
	if code != compZstd && code != r.comp.code {
		code = compNone
	}
	body, used := plain, compNone
	if code == compZstd && len(plain) > largeObject {
		// Compressed as a stream into chunks, then copied once into a
		// buffer of the size it came to. Grown by appends instead, a 16
		// MiB segment's buffer was reallocated a dozen times, and its
		// garbage took a wal-push of random WAL to 100 MiB; a buffer made
		// for the whole plaintext at once costs its 16 MiB of resident
		// memory even for WAL that compresses to 2. An object that does
		// not compress stops the stream as soon as its output reaches the
		// plaintext's size, and is stored as it is.
		out := &chunkWriter{max: len(plain) - 1}
		if err := r.comp.streamZstd(out, plain); err == nil {
			dst = slices.Grow(dst, at-start+5+out.n+blobOverhead(s.code))[:at+5]
			for _, c := range out.chunks {
				dst = append(dst, c...)
			}
			used = compZstd
		} else {
			// The given-up attempt is as large as the plaintext: freed
			// before the buffer is made, so that the buffer can take
			// its memory instead of as much more (68 against 85 MiB of
			// RSS for a wal-push of a random segment).
			out.chunks = nil
			runtime.GC()
			dst = append(slices.Grow(dst, at-start+5+len(plain)+blobOverhead(s.code))[:at+5], plain...)
		}
	} else {
		// Room for the worst case of either compressor, and the tag.
		dst = slices.Grow(dst, at-start+5+lz4.CompressBlockBound(len(plain))+64+blobOverhead(s.code))
		dst = dst[:at+5]
		if code != compNone {
			body, used = r.comp.compressObject(dst[at+5:at+5], plain, code)
		}
		if len(body) > 0 && &body[0] == &dst[at+5 : at+6][0] {
			dst = dst[:at+5+len(body)] // compressed in place
		} else {
			dst = append(dst, body...)
		}
	}
	dst[at] = used
	binary.LittleEndian.PutUint32(dst[at+1:], uint32(len(plain)))
	dst = slices.Grow(dst, blobOverhead(s.code)-blobHeaderLen(s.code))
	return s.sealAt(dst, start, []byte(ad))
}

// chunkWriter keeps what is written in chunks of up to chunkSize bytes,
// at most max bytes in all.
type chunkWriter struct {
	chunks [][]byte
	n, max int
}

const chunkSize = 1 << 20

var errOutgrown = errors.New("compressed output as large as the input")

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.max {
		return 0, errOutgrown
	}
	w.n += len(p)
	for rest := p; len(rest) > 0; {
		k := len(w.chunks) - 1
		if k < 0 || len(w.chunks[k]) == chunkSize {
			w.chunks, k = append(w.chunks, make([]byte, 0, chunkSize)), k+1
		}
		m := min(chunkSize-len(w.chunks[k]), len(rest))
		w.chunks[k], rest = append(w.chunks[k], rest[:m]...), rest[m:]
	}
	return len(p), nil
}

func (r *Repository) loadObject(ctx context.Context, name, ad string) ([]byte, error) {
	blob, err := loadAll(ctx, r.be, name)
	if err != nil {
		return nil, err
	}
	plain, err := r.openObject(blob, ad)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return plain, nil
}

// openObject opens a sealed object; blob is overwritten.
func (r *Repository) openObject(blob []byte, ad string) ([]byte, error) {
	buf, err := r.keys.sealer.openInPlace(blob, []byte(ad))
	if err != nil {
		return nil, err
	}
	if len(buf) < 5 {
		return nil, errors.New("object too short")
	}
	raw := int(binary.LittleEndian.Uint32(buf[1:]))
	plain, err := r.comp.decompress(buf[5:], buf[0], raw)
	if err != nil {
		return nil, err
	}
	if len(plain) != raw {
		return nil, fmt.Errorf("object decompressed to %d bytes, header says %d", len(plain), raw)
	}
	return plain, nil
}
