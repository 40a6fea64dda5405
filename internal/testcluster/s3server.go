package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster/s3build"
)

// S3Server is a real S3-compatible server (versitygw on its POSIX backend)
// listening on a loopback port, with one bucket created, running as a child
// of the test process.
type S3Server struct {
	// Endpoint is "http://127.0.0.1:<port>".
	Endpoint  string
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string

	child
	t       testing.TB
	bin     string
	addr    string
	dataDir string
}

// StartS3 starts an S3 server on a free loopback port with a fresh bucket and
// registers its stop on t.Cleanup. The first call on a machine builds
// versitygw, which takes a minute or two.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	s := &S3Server{
		t:         t,
		bin:       s3GatewayBinary(t),
		addr:      fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		dataDir:   t.TempDir(),
		Region:    "us-east-1",
		Bucket:    "pgguard-test",
		AccessKey: "pgguard-" + s3RandomHex(t, 4),
		SecretKey: s3RandomHex(t, 20),
	}
	s.Endpoint = "http://" + s.addr
	s.logPath = filepath.Join(t.TempDir(), "versitygw.log")
	t.Cleanup(s.Stop)
	s.Start()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := minio.New(s.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("s3 client for %s: %v", s.Endpoint, err)
	}
	if err := client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("create bucket %s at %s: %v\nserver log:\n%s", s.Bucket, s.Endpoint, err, s.LogTail(20))
	}
	return s
}

// Objects lists the objects the server stores whose key contains part
// (its posix backend keeps each as a file under the bucket's directory),
// for tests that must know what has reached the server.
func (s *S3Server) Objects(part string) []string {
	var out []string
	root := filepath.Join(s.dataDir, s.Bucket)
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if key, _ := filepath.Rel(root, p); strings.Contains(key, part) {
				out = append(out, key)
			}
		}
		return nil
	})
	return out
}

// Options returns what storage.Open needs to reach this server.
func (s *S3Server) Options() storage.S3Options {
	return storage.S3Options{
		Endpoint:  s.Endpoint,
		Region:    s.Region,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
		PathStyle: true,
	}
}

// URL returns the repository location "s3://<bucket>/<prefix>".
func (s *S3Server) URL(prefix string) string {
	return "s3://" + s.Bucket + "/" + strings.Trim(prefix, "/")
}

// Start (re)starts the server on its port and data directory and waits until
// it answers. It must be called from the test goroutine.
func (s *S3Server) Start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--port", s.addr, "--region", s.Region, "--health", "/health", "posix", s.dataDir)
	// Credentials go through the environment, never the argument list.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := s.start(cmd)
	if err != nil {
		s.t.Fatalf("start s3 server %s (%s): %v", s.Endpoint, s.bin, err)
	}
	s.waitReady(done)
}

func (s *S3Server) waitReady(done <-chan struct{}) {
	s.t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	lastSeen := "no attempt yet"
	for {
		select {
		case <-done:
			s.t.Fatalf("s3 server at %s exited during startup\nserver log:\n%s", s.Endpoint, s.LogTail(20))
		default:
		}
		resp, err := client.Get(s.Endpoint + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			lastSeen = resp.Status
		} else {
			lastSeen = err.Error()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("s3 server at %s not ready after 30s; last seen: %s\nserver log:\n%s", s.Endpoint, lastSeen, s.LogTail(20))
		}
		select {
		case <-done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it
// to exit. Data stays for a later Start. Stopping a stopped server is a no-op.
func (s *S3Server) Stop() {
	cmd, done := s.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(10 * time.Second):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("s3 server pid %d did not exit after SIGKILL", cmd.Process.Pid)
	}
}

// LogTail returns the last n lines of the server's output.
func (s *S3Server) LogTail(n int) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// s3GatewayBinary returns the path of the versitygw binary, building it
// first if this machine has not (see s3build.Binary).
func s3GatewayBinary(t testing.TB) string {
	t.Helper()
	bin, err := s3build.Binary(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func s3RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random credentials: %v", err)
	}
	return hex.EncodeToString(b)
}
