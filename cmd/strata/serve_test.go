package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-ai/strata/internal/netns"
)

// server is a running `strata serve` process.
type server struct {
	cmd    *exec.Cmd
	url    string
	stderr syncBuffer
	done   chan struct{}
}

// syncBuffer is a bytes.Buffer the process's output copier and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls the output until it contains want, for up to d.
func (b *syncBuffer) waitFor(want string, d time.Duration) bool {
	for start := time.Now(); time.Since(start) < d; time.Sleep(20 * time.Millisecond) { // polling output
		if strings.Contains(b.String(), want) {
			return true
		}
	}
	return strings.Contains(b.String(), want)
}

var servingRE = regexp.MustCompile(`serving on (http://\S+)`)

// startServe starts cmd (a `strata serve`) and waits until it prints its URL.
func startServe(t *testing.T, cmd *exec.Cmd, wantURL bool) *server {
	t.Helper()
	s := &server{cmd: cmd, done: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	cmd.Stderr = &s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
		pr.Close()
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	if !wantURL {
		return s
	}
	select {
	case s.url = <-urlc:
	case <-s.done:
		t.Fatalf("strata serve exited before serving:\n%s", s.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("strata serve did not start in 60 s:\n%s", s.stderr.String())
	}
	return s
}

// completeIDs asks for a greedy completion of token ids and returns the generated ids.
func completeIDs(t *testing.T, hc *http.Client, url string, prompt []int, n int) []int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": n, "temperature": 0, "return_token_ids": true, "ignore_eos": true})
	resp, err := hc.Post(url+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("completions: %d %s", resp.StatusCode, raw)
	}
	var out struct {
		Choices []struct {
			TokenIDs []int `json:"token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) != 1 {
		t.Fatalf("completions: %v in %s", err, raw)
	}
	return out.Choices[0].TokenIDs
}

func goldenFor(t *testing.T, model string) (prompts, greedy [][]int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", model, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Prompts [][]int `json:"prompts"`
		Greedy  [][]int `json:"greedy"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Prompts, g.Greedy
}

// TestServeLocalNodesGreedy serves the dense and MoE test models with --skip-tokenizer-init
// as TP 2 × PP 2 on two emulated nodes in one process, and checks /v1/completions over token
// ids returns transformers' greedy tokens.
func TestServeLocalNodesGreedy(t *testing.T) {
	bin := strataBin(t)
	for _, model := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		t.Run(model, func(t *testing.T) {
			dir := filepath.Join("..", "..", "testdata", "models", model)
			s := startServe(t, exec.Command(bin, "serve", dir, "--skip-tokenizer-init", "--local-nodes", "2",
				"--tensor-parallel-size", "2", "--host", "127.0.0.1", "--port", "0", "--max-model-len", "512",
				"--kv-cache-memory-bytes", "4000000"), true)
			prompts, greedy := goldenFor(t, model)
			for p, prompt := range prompts {
				if got := completeIDs(t, http.DefaultClient, s.url, prompt, len(greedy[p])); fmt.Sprint(got) != fmt.Sprint(greedy[p]) {
					t.Fatalf("prompt %d: %v, transformers %v", p, got, greedy[p])
				}
			}
		})
	}
}

// TestServeKVCacheDType: --kv-cache-dtype bfloat16 halves a token's cache, so the same
// --kv-cache-memory-bytes holds twice the tokens, and the split model still answers.
func TestServeKVCacheDType(t *testing.T) {
	bin := strataBin(t)
	dir := filepath.Join("..", "..", "testdata", "models", "qwen3-dense-tiny")
	tokensRE := regexp.MustCompile(`kv_tokens=(\d+)`)
	held := map[string]int{}
	for _, kvType := range []string{"float32", "bfloat16"} {
		s := startServe(t, exec.Command(bin, "serve", dir, "--skip-tokenizer-init", "--local-nodes", "2",
			"--tensor-parallel-size", "2", "--host", "127.0.0.1", "--port", "0", "--max-model-len", "256",
			"--kv-cache-memory-bytes", "4000000", "--kv-cache-dtype", kvType), true)
		if !s.stderr.waitFor("kv_cache_dtype="+kvType, 10*time.Second) {
			t.Fatalf("--kv-cache-dtype %s: the start-up line does not say so:\n%s", kvType, s.stderr.String())
		}
		m := tokensRE.FindStringSubmatch(s.stderr.String())
		if m == nil {
			t.Fatalf("no kv_tokens in the start-up line:\n%s", s.stderr.String())
		}
		held[kvType], _ = strconv.Atoi(m[1])
		prompts, _ := goldenFor(t, "qwen3-dense-tiny")
		if got := completeIDs(t, http.DefaultClient, s.url, prompts[0], 8); len(got) != 8 {
			t.Fatalf("--kv-cache-dtype %s: %d tokens, want 8", kvType, len(got))
		}
	}
	// blocks are whole: a float32 budget's block count, doubled, may gain one more block
	if f, b := held["float32"], held["bfloat16"]; b < 2*f || b > 2*f+32 {
		t.Fatalf("the same budget holds %d float32 tokens and %d bfloat16 ones, want twice as many", f, b)
	}
}

// TestServeRefusals: bad layouts and vLLM flags strata does not have are refused by name.
func TestServeRefusals(t *testing.T) {
	bin := strataBin(t)
	dense := filepath.Join("..", "..", "testdata", "models", "qwen3-dense-tiny")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", dense, "--quantization", "awq"}, "--quantization is a vLLM flag that strata does not support"},
		{[]string{"serve", dense, "--tensor-parallel-size", "3"}, "do not divide across 3"},
		{[]string{"serve", dense, "--pipeline-parallel-size", "2"}, "needs 2 nodes"},
		{[]string{"serve", dense, "--local-nodes", "8"}, "8 pipeline stages for 4 layers"},
		{[]string{"serve", dense, "--gpu-memory-utilization", "0.0000001"}, "does not fit"},
		{[]string{"serve", dense, "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"serve", dense, "--tool-call-parser", "mistral"}, "strata has hermes"},
		{[]string{"serve", dense, "--kv-cache-dtype", "fp8_e4m3"}, "fp8 KV caches are not supported"},
		{[]string{"serve", dense, "--block-size", "0"}, "--block-size 0: want at least 1"},
		{[]string{"serve", dense, "--max-num-seqs", "0"}, "--max-num-seqs 0: want at least 1"},
		{[]string{"serve", dense, "--max-num-batched-tokens", "-2"}, "--max-num-batched-tokens -2: want at least 1"},
		{[]string{"serve", dense, "--port", "70000"}, "--port 70000: want a TCP port"},
		{[]string{"serve", dense, "--served-model-name", "a, ,b"}, "--served-model-name: a name is empty"},
		{[]string{"serve", dense, "--nnodes", "-1"}, "--nnodes -1: want at least 1"},
		{[]string{"serve", dense, "--local-nodes", "-2"}, "--local-nodes -2"},
		{[]string{"serve", dense, "--kv-cache-memory-bytes", "-5"}, "--kv-cache-memory-bytes -5"},
		{[]string{"serve", dense, "--nnodes", "2", "--node-rank", "1", "--headless", "--master-addr", "127.0.0.1:29501"}, "give the host alone and the port as --master-port 29501"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("strata %s: err %v, output %q; want an error saying %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
}

// TestNetnsServe runs the seed's layout in miniature as separate processes in two network
// namespaces (1 Gbit/s links): node 0 serves the API, node 1 is --headless; greedy tokens
// over the API match transformers'. Then node 1 is killed while a request streams: the
// stream ends with an error within 60 s, /health turns 503, and the server keeps answering.
// A restarted node 1 brings the cluster back: /health 200 and the same greedy tokens. Last,
// node 1's link goes down while the server is idle: the heartbeat's round trip goes
// unanswered and /health turns 503 within about a link timeout (5 s here).
func TestNetnsServe(t *testing.T) {
	cl := netns.Up(t, 2, "1gbit")
	bin := strataBin(t)
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "models", "qwen3-dense-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"serve", dir, "--skip-tokenizer-init", "--nnodes", "2", "--tensor-parallel-size", "2",
		"--master-addr", cl.Addr(0), "--master-port", "29611", "--max-model-len", "4096", "--kv-cache-memory-bytes", "16000000"}
	env := append(os.Environ(), "STRATA_TIMEOUT=5s")
	worker := cl.Command(context.Background(), 1, bin, append(common, "--node-rank", "1", "--headless")...)
	worker.Env = env
	w := startServe(t, worker, false)
	head := cl.Command(context.Background(), 0, bin, append(common, "--node-rank", "0", "--host", cl.Addr(0), "--port", "8000")...)
	head.Env = env
	s := startServe(t, head, true)
	hc := &http.Client{Transport: &http.Transport{DialContext: cl.DialContext(0)}}

	prompts, greedy := goldenFor(t, "qwen3-dense-tiny")
	for p, prompt := range prompts {
		if got := completeIDs(t, hc, s.url, prompt, len(greedy[p])); fmt.Sprint(got) != fmt.Sprint(greedy[p]) {
			t.Fatalf("prompt %d: %v, transformers %v", p, got, greedy[p])
		}
	}

	// a long stream, then node 1 dies under it
	body, _ := json.Marshal(map[string]any{"prompt": prompts[1], "max_tokens": 4000, "ignore_eos": true, "stream": true, "return_token_ids": true})
	resp, err := hc.Post(s.url+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("streaming request: %d %s", resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 3; i++ {
		if !sc.Scan() {
			t.Fatalf("the stream ended before the kill: %v", sc.Err())
		}
	}
	killed := time.Now()
	_ = w.cmd.Process.Kill()
	var last string
	ended := make(chan struct{})
	go func() {
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				last = line
				if strings.Contains(line, `"error"`) {
					break
				}
			}
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(60 * time.Second):
		t.Fatal("the stream did not end within 60 s of the node's death")
	}
	if !strings.Contains(last, `"error"`) {
		t.Fatalf("the stream ended without an error event; last line %q (read error %v)\nserver: %s", last, sc.Err(), s.stderr.String())
	}
	t.Logf("stream failed %v after the kill: %s", time.Since(killed).Round(time.Millisecond), last)
	waitHealth(t, hc, s, http.StatusServiceUnavailable, killed, 60*time.Second, "the node died")
	r, err := hc.Get(s.url + "/v1/models")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("after the node died, /v1/models: %v %v", r, err)
	}
	r.Body.Close()
	r, err = hc.Post(s.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": [1, 2, 3], "max_tokens": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a request while a node is down got %d, want 503", r.StatusCode)
	}
	select {
	case <-s.done:
		t.Fatalf("the API server exited:\n%s", s.stderr.String())
	default:
	}

	restarted := cl.Command(context.Background(), 1, bin, append(common, "--node-rank", "1", "--headless")...)
	restarted.Env = env
	startServe(t, restarted, false)
	back := time.Now()
	waitHealth(t, hc, s, http.StatusOK, back, 90*time.Second, "node 1 restarted")
	t.Logf("the cluster re-formed %v after node 1 restarted", time.Since(back).Round(time.Millisecond))
	for p, prompt := range prompts[:2] {
		if got := completeIDs(t, hc, s.url, prompt, len(greedy[p])); fmt.Sprint(got) != fmt.Sprint(greedy[p]) {
			t.Fatalf("after the restart, prompt %d: %v, transformers %v", p, got, greedy[p])
		}
	}

	if out, err := cl.Output(context.Background(), 1, "ip", "link", "set", "eth0", "down"); err != nil {
		t.Fatalf("link down: %v\n%s", err, out)
	}
	cut := time.Now()
	waitHealth(t, hc, s, http.StatusServiceUnavailable, cut, 20*time.Second, "node 1's link went down")
	t.Logf("/health turned 503 %v after node 1's link went down (idle server)", time.Since(cut).Round(time.Millisecond))
}

// TestServeDemo runs the README's first command, `strata serve` with no model: the built-in
// demo on 2 emulated nodes × 2 ranks. It prints a URL and a curl line, and the line works.
func TestServeDemo(t *testing.T) {
	bin := strataBin(t)
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", "0")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	s := startServe(t, cmd, true)
	// stderr and stdout travel through separate pipes: the start-up line may lag the URL
	if !s.stderr.waitFor("tp=2 pp=2", 10*time.Second) {
		t.Fatalf("the demo should run as 2 nodes × 2 ranks; start-up said:\n%s", s.stderr.String())
	}
	resp, err := http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "Hello", "max_tokens": 16}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || len(out.Choices) != 1 || out.Usage.CompletionTokens < 1 {
		t.Fatalf("the README's curl line: status %d, %+v, %v", resp.StatusCode, out, err)
	}
}

// TestNetnsServeLayouts serves the dense and MoE test models as two processes in two network
// namespaces (1 Gbit/s links) at every tensor-parallel size with pipeline parallel 2, and
// checks /v1/completions over token ids returns transformers' greedy tokens.
func TestNetnsServeLayouts(t *testing.T) {
	cl := netns.Up(t, 2, "1gbit")
	bin := strataBin(t)
	hc := &http.Client{Transport: &http.Transport{DialContext: cl.DialContext(0)}}
	port := 29700
	for _, model := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "models", model))
		if err != nil {
			t.Fatal(err)
		}
		prompts, greedy := goldenFor(t, model)
		for _, tp := range []int{1, 2, 4} {
			port++
			t.Run(fmt.Sprintf("%s/tp%d-pp2", model, tp), func(t *testing.T) {
				common := []string{"serve", dir, "--skip-tokenizer-init", "--nnodes", "2", "--pipeline-parallel-size", "2",
					"--tensor-parallel-size", fmt.Sprint(tp), "--master-addr", cl.Addr(0), "--master-port", fmt.Sprint(port),
					"--max-model-len", "512", "--kv-cache-memory-bytes", "4000000"}
				worker := cl.Command(context.Background(), 1, bin, append(common, "--node-rank", "1", "--headless")...)
				w := startServe(t, worker, false)
				head := cl.Command(context.Background(), 0, bin, append(common, "--node-rank", "0", "--host", cl.Addr(0), "--port", fmt.Sprint(port+1000))...)
				s := startServe(t, head, true)
				for p, prompt := range prompts {
					if got := completeIDs(t, hc, s.url, prompt, len(greedy[p])); fmt.Sprint(got) != fmt.Sprint(greedy[p]) {
						t.Fatalf("prompt %d: %v, transformers %v\nworker: %s", p, got, greedy[p], w.stderr.String())
					}
				}
			})
		}
	}
}

// waitHealth polls /health until it answers want, failing if that takes more than limit from
// since (what happened then is named by event). The server must answer throughout.
func waitHealth(t *testing.T, hc *http.Client, s *server, want int, since time.Time, limit time.Duration, event string) {
	t.Helper()
	for {
		r, err := hc.Get(s.url + "/health")
		if err != nil {
			t.Fatalf("health: %v (the server must stay up)", err)
		}
		r.Body.Close()
		if r.StatusCode == want {
			return
		}
		if time.Since(since) > limit {
			t.Fatalf("/health still %d %v after %s\nserver: %s", r.StatusCode, limit, event, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the server's state
	}
}

// TestLoadDefaultsRefusesBadValues: generation_config.json's sampling defaults are held to the
// rules a request's own values meet when the server starts; good ones load, and "vllm" leaves
// the file out.
func TestLoadDefaultsRefusesBadValues(t *testing.T) {
	for body, want := range map[string]string{
		`{"temperature": -1}`:       "temperature -1",
		`{"temperature": 2.5}`:      "temperature 2.5 must be between 0 and 2",
		`{"top_p": 0}`:              "top_p 0",
		`{"top_k": -5}`:             "top_k -5",
		`{"min_p": 1.5}`:            "min_p 1.5",
		`{"repetition_penalty": 0}`: "repetition_penalty 0",
		`{"max_new_tokens": 0}`:     "max_new_tokens 0",
		`{"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0, "repetition_penalty": 1.05, "max_new_tokens": 64}`: "",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := loadDefaults("auto", dir)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want == "" && (d.Temperature == nil || *d.Temperature != 0.6 || d.TopK == nil || *d.TopK != 20):
			t.Errorf("%s: loaded %+v", body, d)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--generation-config vllm")):
			t.Errorf("%s: got %v, want an error saying %q and how to leave the file out", body, err, want)
		}
		if d, err := loadDefaults("vllm", dir); err != nil || d.Temperature != nil {
			t.Errorf("%s with vllm: %+v, %v", body, d, err)
		}
	}
}
