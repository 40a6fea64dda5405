package dcs

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Reads go on while the store changes leader: Load makes its transaction
// again when etcd answers "leader changed" (the client retries a Get by
// itself, not a Txn). Three members in this process; the store's client
// talks to one of them while leadership moves round the three.
func TestLoadRidesOutLeaderChanges(t *testing.T) {
	ports, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	names := []string{"m1", "m2", "m3"}
	var initial []string
	for i, n := range names {
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", n, ports[2*i+1]))
	}
	members := map[string]*Embedded{}
	for i, n := range names {
		e, err := StartEmbedded(EmbedOptions{
			Name: n, DataDir: filepath.Join(dir, n),
			ClientURL:      fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:        fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			InitialCluster: strings.Join(initial, ","), ClusterToken: "dcs-election-test",
			LogFile: filepath.Join(dir, n+".log"),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		members[n] = e
	}
	for n, e := range members {
		select {
		case <-e.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("member %s not ready after 30 s (log: %s)", n, filepath.Join(dir, n+".log"))
		}
	}
	s, err := Open(Options{Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", ports[0])}, DialTimeout: 5 * time.Second, Cluster: "election", TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var loads int
	var failed []error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.Load(ctx)
				mu.Lock()
				loads++
				if err != nil {
					failed = append(failed, err)
				}
				mu.Unlock()
			}
		}()
	}
	moves := 0
	for range 30 {
		leader := -1
		for i, n := range names {
			if srv := members[n].etcd.Server; srv.Lead() == uint64(srv.MemberID()) {
				leader = i
			}
		}
		if leader < 0 {
			continue // an election under way: the next round moves it
		}
		if members[names[leader]].MoveLeadershipTo(ctx, names[(leader+1)%3], 5*time.Second) == nil {
			moves++
		}
	}
	close(stop)
	wg.Wait()
	if moves < 10 {
		t.Fatalf("only %d of 30 leadership moves happened: the test did not test", moves)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d loads failed while leadership moved %d times, first: %v", len(failed), loads, moves, failed[0])
	}
	t.Logf("%d loads, none failed, while leadership moved %d times", loads, moves)
}
