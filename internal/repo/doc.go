// Package repo owns the backup repository format: keys, encrypted and
// compressed content-addressed blocks, pack files and their index, backup
// manifests, WAL objects, locks, verification and garbage collection. It is
// built only on storage.Backend and must never know whether it lives on a
// local disk or in S3, never talk to PostgreSQL, and never log or return a
// passphrase, key file content or key.
//
// # On-disk contract (format version 1)
//
// All names are relative to the backend root.
//
//	config                     encrypted config (JSON), written last by Init
//	keys/<id>                  plaintext JSON key object (see below)
//	packs/<2 hex>/<pack id>    pack files, pack id = hex SHA-256 of the pack bytes
//	index/<id>                 encrypted, zstd-compressed index objects
//	manifests/<backup id>      encrypted, zstd-compressed manifest (JSON)
//	wal/<timeline>/<name>      one WAL segment or history file
//	locks/<id>                 plaintext JSON lock object
//
// Encrypted blob. Every encrypted byte string is
//
//	[1 byte cipher][nonce][ciphertext || 16-byte tag]
//
// cipher 1 = AES-256-GCM (12-byte nonce), 2 = XChaCha20-Poly1305 (24-byte
// nonce). Nonces are random. The associated data binds a blob to its place:
// "pgguard key" for the master key, "config", "index", "pack header",
// "manifest/<backup id>", "wal/<name>", and the 32-byte block id for a block,
// so no blob can be swapped for another and still decrypt.
//
// Keys. Init draws a random 256-bit master key. keys/<id> holds it sealed
// under a key-encryption key derived from a passphrase (argon2id or scrypt,
// salt and parameters stored in the key object) or from a key file
// (HKDF-SHA256 of the file content with a stored salt). From the master key
// HKDF-SHA256 derives two sub-keys: info "pgguard/v1/encryption" seals every
// blob, info "pgguard/v1/block-id" keys the block id hash. The master key
// itself is never used directly.
//
// Blocks. Callers cut data into blocks aligned on 8 KiB PostgreSQL pages (the
// block size is a repository default, a caller may write smaller blocks). A
// block id is HMAC-SHA256(block-id key, plaintext): equal content has equal
// ids within a repository and ids reveal nothing about content to anyone
// without the key. A stored block is seal(compress(plaintext)) with AD = id;
// compression is 0 none, 1 zstd, 2 lz4, and none is used whenever
// compression does not make the block smaller.
//
// Pack file.
//
//	[block blob]...[block blob][header blob][uint32 LE header blob length]
//
// The header blob (AD "pack header") decrypts to: 1 byte version (1), then
// one 53-byte entry per block: 32 id, uint64 LE offset, uint32 LE stored
// length, uint32 LE raw length, 1 byte compression, uint32 reserved (0). The
// pack id is the hex SHA-256 of the whole pack, so a pack can be checked
// without any key, and the index can be rebuilt from the packs alone.
//
// Index object. Decrypts (AD "index") to a zstd frame of: 1 byte version (1),
// uint32 LE pack count, then per pack 32-byte pack id, uint32 LE entry count,
// entries as in the pack header. The index is the union of all index objects;
// a block may appear in more than one pack, any copy is valid.
//
// Manifest. One complete manifest per backup, JSON (see Manifest), zstd
// compressed then sealed with AD "manifest/<id>". A backup id is
// "<UTC start time as 20060102T150405Z>-<8 hex>", so ids sort by time. Every
// manifest lists every block of every file, so no backup depends on another;
// the parent id is informational only.
//
// WAL object.
//
//	"PGW1" [32-byte tag][blob with AD "wal/<name>" of compress(segment)]
//
// The tag is HMAC-SHA256(block-id key, segment) and stays in plaintext so a
// second put of the same name is compared without decrypting. The first
// byte of the blob after the tag is the compression of the segment.
//
// Write order. Packs, then the index that lists them, then the manifest. A
// manifest therefore exists only when all its blocks are in saved, indexed
// packs; a crash at any instant leaves at worst unreferenced packs (found by
// RebuildIndex and reused, or removed by GC) and never a broken backup. GC
// saves new packs and a new complete index before it removes old index
// objects, and removes old packs last.
//
// Locks. Backups hold shared locks, GC holds an exclusive lock. A lock object
// is refreshed periodically and is stale (ignored) once its refresh time is
// older than the stale timeout.
package repo
