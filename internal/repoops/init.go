package repoops

import (
	"context"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// InitRequest is how a new repository stores its blocks.
type InitRequest struct {
	Cipher           string // repo.Cipher
	Compression      string // repo.Compression
	CompressionLevel int
	PackSizeMiB      int
}

// InitResult is the new repository.
type InitResult struct {
	Config   repo.Config
	Location string
}

// Init creates an encrypted repository at the empty location of s, with
// the key of s (a passphrase must be at least reposettings.MinPassphrase
// long).
func Init(ctx context.Context, s reposettings.Settings, req InitRequest) (InitResult, error) {
	ro := repo.DefaultOptions()
	ro.Cipher = repo.Cipher(req.Cipher)
	ro.Compression = repo.Compression(req.Compression)
	ro.CompressionLevel = req.CompressionLevel
	ro.PackSize = int64(req.PackSizeMiB) << 20
	ro.Runtime = repo.Runtime{Parallel: s.Channels}
	if err := ro.Validate(); err != nil {
		return InitResult{}, badinput.Wrap(err)
	}
	key, err := s.NewKey()
	if err != nil {
		return InitResult{}, err
	}
	be, err := s.Backend(ctx)
	if err != nil {
		return InitResult{}, err
	}
	r, err := repo.Init(ctx, be, key, ro)
	if err != nil {
		return InitResult{}, err
	}
	defer r.Close(context.WithoutCancel(ctx))
	return InitResult{Config: r.Config(), Location: be.Location()}, nil
}
