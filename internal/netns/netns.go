// Package netns brings up emulated clusters for tests: one network namespace per node, veth
// links through a bridge, shaped with tc tbf (scripts/netns.sh does the work). Tests call
// Require first; it skips them, saying why, where namespaces cannot be made.
package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

// Cluster is a set of node namespaces prefix-n0 .. prefix-n(N-1) at 10.77.0.1 ...
type Cluster struct {
	Prefix string
	N      int
	script string
}

// Require skips t unless it runs as root with ip and tc available.
func Require(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux network namespaces (these tests run on Linux as root, as CI does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root; try: sudo go test ./...)")
	}
	for _, tool := range []string{"ip", "tc", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install iproute2)", tool)
		}
	}
}

var counter atomic.Int32

// Up makes an n-node cluster with links shaped to rate (e.g. "1gbit") and removes it, with
// everything running inside, when the test ends.
func Up(t testing.TB, n int, rate string) *Cluster { return up(t, n, rate, "up") }

// UpRing is Up plus the patent's wiring: each node also has eth1 facing node i+1 and eth2
// facing node i-1, one shaped link per neighbouring pair.
func UpRing(t testing.TB, n int, rate string) *Cluster { return up(t, n, rate, "up2") }

func up(t testing.TB, n int, rate, mode string) *Cluster {
	t.Helper()
	Require(t)
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Prefix: fmt.Sprintf("st%d-%d", os.Getpid()%100000, counter.Add(1)), N: n, script: script}
	out, err := exec.Command("bash", script, mode, fmt.Sprint(n), rate, c.Prefix).CombinedOutput()
	if err != nil {
		_ = exec.Command("bash", script, "down", c.Prefix).Run()
		t.Fatalf("netns up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "down", c.Prefix).CombinedOutput(); err != nil {
			t.Errorf("netns down: %v\n%s", err, out)
		}
	})
	return c
}

// Addr is node i's address.
func (c *Cluster) Addr(i int) string { return fmt.Sprintf("10.77.0.%d", i+1) }

// NS is node i's namespace name.
func (c *Cluster) NS(i int) string { return fmt.Sprintf("%s-n%d", c.Prefix, i) }

// Command returns a command that runs inside node i.
func (c *Cluster) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.NS(i), name}, args...)...)
}

// Output runs a command inside node i and returns its combined output.
func (c *Cluster) Output(ctx context.Context, i int, name string, args ...string) (string, error) {
	var b bytes.Buffer
	cmd := c.Command(ctx, i, name, args...)
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "netns.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("netns: scripts/netns.sh not found above the test's directory")
		}
		dir = parent
	}
}
