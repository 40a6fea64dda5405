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
// "manifests/<backup id>", "wal/<name>", and the 32-byte block id for a
// block, so no blob can be swapped for another and still decrypt.
//
// Sealed object. config, index, manifest and WAL objects are the blob of
//
//	[1 byte compression][uint32 LE plaintext length][compressed plaintext]
//
// with compression 0 none, 1 zstd, 2 lz4 (config is never compressed; index
// and manifests use zstd; WAL uses the repository default).
//
// Keys. Init draws a random 256-bit master key. keys/<id> is plaintext JSON
// (version, created, source passphrase|keyfile, kdf argon2id|scrypt|
// hkdf-sha256, salt, kdf parameters, data) where data is the blob of the
// master key under a key-encryption key: argon2id or scrypt of the
// passphrase with the stored salt and parameters, or HKDF-SHA256 of the key
// file content (at least 32 bytes) with the stored salt and info
// "pgguard key". Open tries every key object; several may exist. From the
// master key HKDF-SHA256 (no salt) derives two sub-keys: info
// "pgguard/v1/encryption" seals every blob, info "pgguard/v1/block-id" keys
// the block id hash. The master key itself encrypts nothing.
//
// Config. A sealed object (JSON, see Config) with the format version,
// repository id, creation time, cipher, compression and level, block size
// and pack size. Init writes it last, after the key object.
//
// Blocks. Callers cut data into blocks aligned on 8 KiB PostgreSQL pages:
// FileWriter cuts at the repository block size (default 128 KiB = 16
// pages; 8 KiB for page-level repositories) counted from the file start or
// from the end of the last skipped range. A block id is HMAC-SHA256(block-id
// key, plaintext): equal content has equal ids within a repository, and ids
// reveal nothing about content to anyone without the key. A stored block is
// the blob of compress(plaintext) with AD = id; compression is 0 none,
// 1 zstd, 2 lz4, and none is used whenever compression does not make the
// block smaller.
//
// Pack file, named packs/<first 2 hex of id>/<id>:
//
//	[block blob]...[block blob][header blob][uint32 LE header blob length]
//
// The header blob (AD "pack header") decrypts to 1 byte version (1) and one
// 53-byte entry per block: 32 id, uint64 LE offset of the blob in the pack,
// uint32 LE blob length, uint32 LE plaintext length, 1 byte compression,
// uint32 LE CRC-32C (Castagnoli) of the plaintext when the compression
// byte has its high bit (0x80) set, else reserved (0); packs written before
// the checksum existed have no such entries and are read as before, while
// older binaries refuse newer packs as an unknown compression. Restore
// checks the CRC (the blob is already authenticated under its id by the
// cipher); verify recomputes the keyed block id of every block. The pack
// id is the hex SHA-256 of the whole pack, so
// a pack can be checked without any key, and the index can be rebuilt from
// the packs alone.
//
// Index object, named index/<hex SHA-256 of its plaintext>. A sealed object
// whose plaintext is 1 byte version (1), uint32 LE pack count, then per pack
// the 32-byte pack id, uint32 LE entry count and the entries as in the pack
// header. The index is the union of all index objects; a block may appear
// in more than one pack and any copy is valid. A pack is listed whole in
// one object. Since issue 16 an object lists at most 32768 entries (or one
// pack that has more), and a pack holds at most 32768 blocks, so that a
// reader, which must hold a whole sealed object, needs a few MiB; larger
// objects written before are read all the same. Readers keep the entries
// in a table sorted by block id, in a temporary file when it is large,
// not in memory.
//
// Temporary files (Runtime.TempDir, default $TMPDIR or /tmp; unlinked at
// once, so nothing is left behind): the packs being filled, whose bytes
// are all sealed already, and a large index table, scrambled with AES-CTR
// under a key drawn for the file and held in memory only (its entries
// carry the CRC-32C of each block's plaintext, which the repository
// stores only encrypted). On a tmpfs they take memory, not disk: about
// Runtime.Parallel packs, and 64 bytes per indexed block.
//
// Manifest, named manifests/<backup id>. A sealed object of JSON (see
// Manifest): backup header and the sorted file list. A backup id is
// "<UTC start time as 20060102T150405Z>-<8 hex>", so ids sort by start
// time (to the second). A file's "blocks" is base64 of, per block in file
// order, the 32-byte id, uvarint length and uvarint offset inside the
// block's plaintext (file offsets are the running sum of lengths). A file's
// checksum is hex SHA-256 over, per block, id || uint64 LE block offset ||
// uint64 LE length. Every manifest lists every block of every file, so no
// backup depends on another; the parent id is informational only.
//
// WAL object, named wal/<first 8 characters of the name (the timeline)>/<name>:
//
//	"PGW1" [32-byte tag][sealed object with AD "wal/<name>"]
//
// The tag is HMAC-SHA256(block-id key, content) and is in plaintext so a
// second put of the same name is compared without decrypting.
//
// Lock object, named locks/<random id>: plaintext JSON (host, pid,
// exclusive, created, refreshed). No secrets.
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
