package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-ai/strata/internal/commbench"
	"github.com/strata-ai/strata/internal/netns"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// strataBin builds the binary once per test run, as a user would run it.
func strataBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "strata-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "strata")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	header chan struct{} // closed when the table header is printed
}

// startNodes launches one `strata bench comm` process per node of the cluster.
func startNodes(t *testing.T, cl *netns.Cluster, port int, args ...string) []*proc {
	t.Helper()
	return startNodesEnv(t, cl, port, nil, args...)
}

// startNodesEnv is startNodes with extra environment variables for every node.
func startNodesEnv(t *testing.T, cl *netns.Cluster, port int, env []string, args ...string) []*proc {
	t.Helper()
	bin := strataBin(t)
	procs := make([]*proc, cl.N)
	for i := range cl.N {
		a := append([]string{"bench", "comm", "--nnodes", fmt.Sprint(cl.N), "--node-rank", fmt.Sprint(i),
			"--master-addr", fmt.Sprintf("%s:%d", cl.Addr(0), port)}, args...)
		p := &proc{cmd: cl.Command(context.Background(), i, bin, a...), done: make(chan struct{}), header: make(chan struct{})}
		if env != nil {
			p.cmd.Env = append(os.Environ(), env...)
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stdout = pw
		p.cmd.Stderr = &p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		go func() {
			sc := bufio.NewScanner(pr)
			once := sync.Once{}
			for sc.Scan() {
				line := sc.Text()
				p.stdout.WriteString(line + "\n")
				if strings.Contains(line, "size         count") {
					once.Do(func() { close(p.header) })
				}
			}
			pr.Close()
			p.err = p.cmd.Wait()
			close(p.done)
		}()
		procs[i] = p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return procs
}

func waitAll(t *testing.T, procs []*proc, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for i, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			t.Fatalf("node %d still running after %v\nstderr: %s", i, d, p.stderr.String())
		}
	}
}

// TestNetnsCollectives runs every collective with every algorithm between two namespaces
// (separate processes, TCP over shaped veth links) and checks every element (-c 1).
func TestNetnsCollectives(t *testing.T) {
	cl := netns.Up(t, 2, "1gbit")
	port := 29400
	for _, coll := range []string{"all_reduce", "reduce_scatter", "all_gather", "broadcast", "reduce", "alltoall", "sendrecv"} {
		for _, algo := range []string{"ring", "tree", "hier", "auto"} {
			if (coll == "alltoall" || coll == "sendrecv") && algo != "auto" {
				continue
			}
			port++
			procs := startNodes(t, cl, port, "--ranks-per-node", "2", "-b", "1K", "-e", "300K", "-f", "17",
				"-n", "2", "-w", "1", "-c", "1", "--collective", coll, "-a", algo, "-r", "3", "--json", "--timeout", "20s")
			waitAll(t, procs, 60*time.Second)
			for i, p := range procs {
				if p.err != nil {
					t.Fatalf("%s/%s: node %d: %v\nstderr: %s", coll, algo, i, p.err, p.stderr.String())
				}
			}
			var rep commbench.Report
			if err := json.Unmarshal(procs[0].stdout.Bytes(), &rep); err != nil {
				t.Fatalf("%s/%s: node 0 printed no JSON report: %v\n%s", coll, algo, err, procs[0].stdout.String())
			}
			if len(rep.Rows) != 3 || rep.Wrong != 0 {
				t.Fatalf("%s/%s: want 3 rows and no wrong elements, got %d rows, %d wrong", coll, algo, len(rep.Rows), rep.Wrong)
			}
			for _, r := range rep.Rows {
				if r.OutOfPlace.Wrong != 0 || r.InPlace.Wrong != 0 {
					t.Fatalf("%s/%s: size %d: wrong elements (checking was off?)", coll, algo, r.Size)
				}
			}
		}
	}
	// every type and op through the hierarchical allreduce
	procs := startNodes(t, cl, port+1, "--ranks-per-node", "2", "-b", "4K", "-e", "64K", "-f", "16",
		"-n", "1", "-w", "0", "-c", "1", "-a", "hier", "-d", "all", "-o", "all", "--json")
	waitAll(t, procs, 60*time.Second)
	var rep commbench.Report
	if err := json.Unmarshal(procs[0].stdout.Bytes(), &rep); err != nil || procs[0].err != nil {
		t.Fatalf("types/ops: %v %v\n%s", err, procs[0].err, procs[0].stderr.String())
	}
	if want := 6 * 5 * 2; len(rep.Rows) != want || rep.Wrong != 0 {
		t.Fatalf("types/ops: want %d rows and no wrong elements, got %d rows, %d wrong", want, len(rep.Rows), rep.Wrong)
	}
}

// TestNetnsKillNode kills one node's process mid-benchmark (the master's too) and requires
// every other process to exit non-zero within the timeout plus 5 s, naming the dead node.
func TestNetnsKillNode(t *testing.T) {
	const nodes = 3
	iters := nodes
	if v, err := strconv.Atoi(os.Getenv("STRATA_KILL_ITERS")); err == nil && v > 0 {
		iters = v // the acceptance run: STRATA_KILL_ITERS=20
	}
	cl := netns.Up(t, nodes, "1gbit")
	for iter := range iters {
		victim := (iter + 1) % nodes // kills 1, 2, then the master
		t.Run(fmt.Sprintf("%d-kill-node-%d", iter, victim), func(t *testing.T) {
			procs := startNodes(t, cl, 29000+iter, "--ranks-per-node", "2", "-b", "16M", "-e", "16M",
				"-n", "100000", "-w", "0", "-c", "0", "--timeout", "30s")
			select {
			case <-procs[0].header:
			case <-procs[0].done:
				t.Fatalf("node 0 exited before benchmarking: %v\n%s", procs[0].err, procs[0].stderr.String())
			case <-time.After(60 * time.Second):
				t.Fatal("node 0 printed no table header within 60 s")
			}
			killed := time.Now()
			if err := procs[victim].cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			var survivors []*proc
			for i, p := range procs {
				if i != victim {
					survivors = append(survivors, p)
				}
			}
			waitAll(t, survivors, 35*time.Second)
			for i, p := range procs {
				if i == victim {
					continue
				}
				var ee *exec.ExitError
				if !errors.As(p.err, &ee) || ee.ExitCode() == 0 {
					t.Errorf("node %d: want a non-zero exit, got %v", i, p.err)
				}
				if msg := p.stderr.String(); !strings.Contains(msg, fmt.Sprintf("node %d", victim)) {
					t.Errorf("node %d: error does not name node %d:\n%s", i, victim, msg)
				}
			}
			t.Logf("survivors exited %v after the kill", time.Since(killed).Round(time.Millisecond))
		})
	}
}

// TestNetnsLinkDown takes a node's link down mid-benchmark: no connection reset arrives, so
// the survivors must give up at their timeout, naming the node they were waiting for.
func TestNetnsLinkDown(t *testing.T) {
	cl := netns.Up(t, 2, "1gbit")
	procs := startNodes(t, cl, 29350, "--ranks-per-node", "2", "-b", "16M", "-e", "16M",
		"-n", "100000", "-w", "0", "-c", "0", "--timeout", "3s")
	select {
	case <-procs[0].header:
	case <-time.After(60 * time.Second):
		t.Fatalf("node 0 printed no table header\n%s", procs[0].stderr.String())
	}
	if out, err := cl.Output(context.Background(), 1, "ip", "link", "set", "eth0", "down"); err != nil {
		t.Fatalf("link down: %v %s", err, out)
	}
	waitAll(t, procs, 8*time.Second)
	for i, p := range procs {
		if p.err == nil {
			t.Errorf("node %d: exited 0 after its link went down", i)
		}
	}
	if msg := procs[0].stderr.String(); !strings.Contains(msg, "node 1") || !strings.Contains(msg, "timed out") {
		t.Errorf("node 0: want a timeout naming node 1, got:\n%s", msg)
	}
}

// txBytes reads an interface's transmit counter inside node i.
func txBytes(t *testing.T, cl *netns.Cluster, i int, dev string) int64 {
	t.Helper()
	out, err := cl.Output(context.Background(), i, "cat", "/sys/class/net/"+dev+"/statistics/tx_bytes")
	if err != nil {
		t.Fatalf("tx_bytes of %s on node %d: %v %s", dev, i, err, out)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNetnsRingLinks wires the nodes as the patent does (a NIC per neighbour) and checks that
// hier's node rings carry their data over those links, both of them, with correct results,
// while the ordinary interface carries little.
func TestNetnsRingLinks(t *testing.T) {
	cl := netns.UpRing(t, 2, "1gbit")
	before := map[string]int64{}
	for _, dev := range []string{"eth0", "eth1", "eth2"} {
		before[dev] = txBytes(t, cl, 0, dev)
	}
	procs := startNodesEnv(t, cl, 29450, []string{"STRATA_RING_IFNAMES=eth2,eth1"}, "--ranks-per-node", "2",
		"-b", "4M", "-e", "4M", "-n", "3", "-w", "0", "-c", "1", "-a", "hier", "--json")
	waitAll(t, procs, 60*time.Second)
	for i, p := range procs {
		if p.err != nil {
			t.Fatalf("node %d: %v\n%s", i, p.err, p.stderr.String())
		}
	}
	var rep commbench.Report
	if err := json.Unmarshal(procs[0].stdout.Bytes(), &rep); err != nil || rep.Wrong != 0 || len(rep.Rows) != 1 {
		t.Fatalf("report: %v, %d wrong, %d rows", err, rep.Wrong, len(rep.Rows))
	}
	// 8 calls (3 timed + 1 checked, out of and in place) of 4 MiB: node 0 sends 4 MiB per
	// call, half on each ring
	for _, dev := range []string{"eth1", "eth2"} {
		if sent := txBytes(t, cl, 0, dev) - before[dev]; sent < 8*(2<<20) {
			t.Errorf("%s carried %d bytes, want at least %d (half of every call)", dev, sent, 8*(2<<20))
		}
	}
	// eth0 carries the start-up link measurement (9 MiB) and control traffic, not the rings
	if sent := txBytes(t, cl, 0, "eth0") - before["eth0"]; sent > 12<<20 {
		t.Errorf("eth0 carried %d bytes of a hier run that should use the ring links", sent)
	}
	if !strings.Contains(procs[0].stderr.String(), "node ring links") {
		t.Errorf("node 0 did not log its ring links:\n%s", procs[0].stderr.String())
	}
}
