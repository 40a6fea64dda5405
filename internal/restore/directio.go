package restore

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/repo"
)

// Large files are written with O_DIRECT, from the window's buffer
// straight to the disk: through the page cache, the kernel's copy, page
// allocation and later writeback cost as much CPU as the decoding (0.5 to
// 3 s of system time for the 1.5 GB of a pgbench scale-100 database on
// the project machine, against 0.05 s direct), and the final syncfs then
// has little left to wait for. A segment that is not aligned to
// directAlign (offset, length and buffer) goes through the page cache, as
// do small files.
const (
	directAlign   = 4096
	directMinSize = 256 << 10
)

// maxOpenFiles bounds the restored files kept open between writes (only
// files that several windows write stay open, a few per channel).
const maxOpenFiles = 128

// pwriteAll writes data at off.
func pwriteAll(f *os.File, data []byte, off int64) error {
	for len(data) > 0 {
		// One pwrite moves at most about 2 GB on Linux.
		n, err := f.WriteAt(data[:min(len(data), 1<<30)], off)
		if err != nil {
			return err
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

// aligned says whether data can be written at off with O_DIRECT.
func aligned(data []byte, off int64) bool {
	return len(data) > 0 && len(data)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(data)))%directAlign == 0
}

func alignUp(n int64) int64 { return (n + directAlign - 1) &^ (directAlign - 1) }

// handles keeps up to max restored files open, least recently used first
// to be closed; a file in use is never closed under its writer.
type handles struct {
	w       *writer
	files   []repo.FileEntry
	max     int
	mu      sync.Mutex
	open    map[int]*handle
	lru     list.List // of file index, most recently used at the front
	created []bool
	err     error // first error closing an evicted file
}

type handle struct {
	f      *os.File
	direct bool     // f was opened with O_DIRECT
	fb     *os.File // without O_DIRECT, for unaligned writes to a direct file
	users  int
	elem   *list.Element
}

// close closes the handle's files.
func (e *handle) close() error {
	err := e.f.Close()
	if e.fb != nil {
		if cerr := e.fb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func newHandles(w *writer, files []repo.FileEntry, max int) *handles {
	return &handles{w: w, files: files, max: max, open: map[int]*handle{}, created: make([]bool, len(files))}
}

// create creates (or truncates) file i and leaves it open.
func (h *handles) create(i int) error {
	_, err := h.acquire(i)
	if err == nil {
		h.release(i)
	}
	return err
}

func (h *handles) acquire(i int) (*handle, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.open[i]; ok {
		e.users++
		h.lru.MoveToFront(e.elem)
		return e, nil
	}
	for el := h.lru.Back(); el != nil && len(h.open) >= h.max; {
		prev := el.Prev()
		j := el.Value.(int)
		if e := h.open[j]; e.users == 0 {
			h.lru.Remove(el)
			delete(h.open, j)
			if err := e.close(); err != nil && h.err == nil {
				h.err = fmt.Errorf("restore %s: %w", h.files[j].Path, err)
			}
		}
		el = prev
	}
	if h.err != nil {
		return nil, h.err
	}
	flags := os.O_WRONLY
	if !h.created[i] {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	rel := h.files[i].Path
	direct := h.files[i].Size >= directMinSize && h.files[i].Size%directAlign == 0
	var f *os.File
	var err error = unix.EINVAL
	if direct {
		f, err = h.w.open(rel, flags|unix.O_DIRECT, 0o600)
	}
	if errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = h.w.open(rel, flags, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", h.files[i].Path, err)
	}
	h.created[i] = true
	e := &handle{f: f, direct: direct, users: 1, elem: h.lru.PushFront(i)}
	h.open[i] = e
	return e, nil
}

// buffered returns a descriptor of file i (acquired as e) that writes
// through the page cache.
func (h *handles) buffered(i int, e *handle) (*os.File, error) {
	if !e.direct {
		return e.f, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.fb == nil {
		fb, err := h.w.open(h.files[i].Path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", h.files[i].Path, err)
		}
		e.fb = fb
	}
	return e.fb, nil
}

func (h *handles) release(i int) {
	h.mu.Lock()
	h.open[i].users--
	h.mu.Unlock()
}

// finish closes file i, which nobody writes any more, after asking the
// kernel to start writing it back and calling meta on it. It returns
// false when the file was not open (closed to keep to max): meta was not
// called.
func (h *handles) finish(i int, meta func(*os.File) error) (bool, error) {
	h.mu.Lock()
	e, ok := h.open[i]
	if ok {
		h.lru.Remove(e.elem)
		delete(h.open, i)
	}
	h.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := meta(e.f); err != nil {
		e.close()
		return true, err
	}
	// Only a hint: the final sync makes the directory durable.
	if !e.direct {
		_ = unix.SyncFileRange(int(e.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	} else if e.fb != nil {
		_ = unix.SyncFileRange(int(e.fb.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return true, e.close()
}

// closeAll closes what is still open (after an error) and returns the
// first error seen closing a file.
func (h *handles) closeAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for i, e := range h.open {
		if err := e.close(); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", h.files[i].Path, err))
		}
	}
	clear(h.open)
	h.lru.Init()
	if h.err != nil {
		errs = append([]error{h.err}, errs...)
		h.err = nil
	}
	return errors.Join(errs...)
}

// syncFilesystems flushes the file system of each directory to disk.
func syncFilesystems(dirs []string) error {
	for _, d := range dirs {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", d, err)
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", d, err)
		}
	}
	return nil
}
