package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory Backend for unit tests of the layers above storage.
type Mem struct {
	mu      sync.Mutex
	objects map[string]memObject
}

type memObject struct {
	data    []byte
	modTime time.Time
}

// NewMem returns an empty in-memory backend.
func NewMem() *Mem { return &Mem{objects: map[string]memObject{}} }

func (m *Mem) Location() string { return "mem:" }

func (m *Mem) Save(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if err != nil {
		return Permanent("save", name, fmt.Errorf("read input: %w", err))
	}
	if size >= 0 && int64(len(data)) != size {
		return Permanent("save", name, fmt.Errorf("read %d bytes, expected %d", len(data), size))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[name] = memObject{data: data, modTime: time.Now()}
	return nil
}

func (m *Mem) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	obj, ok := m.objects[name]
	m.mu.Unlock()
	if !ok {
		return nil, NotExist("load", name, nil)
	}
	if offset < 0 || offset > int64(len(obj.data)) {
		return nil, Permanent("load", name, fmt.Errorf("offset %d outside object of %d bytes", offset, len(obj.data)))
	}
	end := int64(len(obj.data))
	if length > 0 && offset+length < end {
		end = offset + length
	}
	return io.NopCloser(bytes.NewReader(obj.data[offset:end])), nil
}

func (m *Mem) Stat(ctx context.Context, name string) (FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return FileInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[name]
	if !ok {
		return FileInfo{}, NotExist("stat", name, nil)
	}
	return FileInfo{Name: name, Size: int64(len(obj.data)), ModTime: obj.modTime}, nil
}

func (m *Mem) List(ctx context.Context, prefix string, fn func(FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	var infos []FileInfo
	for name, obj := range m.objects {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, FileInfo{Name: name, Size: int64(len(obj.data)), ModTime: obj.modTime})
		}
	}
	m.mu.Unlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mem) Remove(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; !ok {
		return NotExist("remove", name, nil)
	}
	delete(m.objects, name)
	return nil
}
