package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func runCLI(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestBenchCommBadInput: every bad flag gets an error naming the flag and what to do.
func TestBenchCommBadInput(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"bench", "comm", "-b", "lots"}, "-b"},
		{[]string{"bench", "comm", "-b", "1M", "-e", "1K"}, "smaller than -b"},
		{[]string{"bench", "comm", "-o", "xor"}, "sum, prod, min, max, avg"},
		{[]string{"bench", "comm", "-d", "int8"}, "float, double, half, bfloat16"},
		{[]string{"bench", "comm", "-a", "butterfly"}, "ring, tree, hier or auto"},
		{[]string{"bench", "comm", "--collective", "scatter"}, "all_reduce, reduce_scatter"},
		{[]string{"bench", "comm", "--nnodes", "2"}, "--master-addr"},
		{[]string{"bench", "comm", "--nnodes", "2", "--node-rank", "2", "--master-addr", "127.0.0.1:1"}, "--node-rank 2"},
		{[]string{"bench", "comm", "--local-nodes", "2", "--nnodes", "2"}, "not both"},
		{[]string{"bench", "comm", "-f", "1", "-e", "1M"}, "-f"},
		{[]string{"bench", "comm", "--ranks-per-node", "0"}, "--ranks-per-node"},
		{[]string{"bench", "comm", "--ranks-per-node", "100000"}, "at most 1024"},
		{[]string{"bench", "comm", "--timeout", "-1s"}, "--timeout -1s"},
		{[]string{"bench", "comm", "--nchannels", "-2"}, "--nchannels -2"},
	}
	if _, ok := memTotal(); ok { // where the machine's memory is known, buffers beyond it are refused
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"bench", "comm", "--ranks-per-node", "512", "-e", "1G"}, "lower -e or the ranks"})
	}
	for _, c := range cases {
		_, err := runCLI(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error mentioning %q, got %v", c.args, c.want, err)
		}
	}
}

// TestBenchCommRuns runs strata bench comm small and checks the table.
func TestBenchCommRuns(t *testing.T) {
	out, err := runCLI("bench", "comm", "-b", "8", "-e", "64K", "-f", "8", "-n", "2", "-w", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 nodes × 2 ranks", "#       size         count      type   redop    root     time   algbw   busbw #wrong", "# Out of bounds values : 0 OK", "# Avg bus bandwidth"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if rows := strings.Count(out, "  float     sum"); rows != 5 {
		t.Fatalf("want 5 rows (8 B .. 32 KiB by ×8), got %d:\n%s", rows, out)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"8": 8, "64K": 64 << 10, "1M": 1 << 20, "128m": 128 << 20, "1G": 1 << 30, "0.5K": 512} {
		if got, err := parseSize("-b", in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// TestBenchEngineJSON runs strata bench engine on a real (tiny) checkpoint and on a random
// model of a config's shape, dense and MoE, and checks the --json object the issue specifies:
// a prefill rate, one decode entry per batch size in order with a rate and a roofline
// fraction, and the bandwidth measured in the run (and strata's own compute fraction and
// matmul peak).
func TestBenchEngineJSON(t *testing.T) {
	for _, src := range [][]string{
		{"--model", "../../testdata/models/qwen3-dense-tiny"},
		{"--random-model", "../../testdata/models/qwen3-moe-tiny/config.json"},
		{"--model", "../../testdata/models/qwen3-dense-tiny", "--full-logits"},
	} {
		args := append([]string{"bench", "engine", "--json", "--prompt-len", "8", "--context-len", "8", "--decode-steps", "2", "--batches", "1,3", "--repeats", "2"}, src...)
		out, err := runCLI(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		var res struct {
			Prefill float64 `json:"prefill_tokens_per_s"`
			Decode  []struct {
				Batch    int     `json:"batch"`
				TokensPS float64 `json:"tokens_per_s"`
				Roofline float64 `json:"roofline_fraction"`
				StepMs   float64 `json:"step_ms"`
				Compute  float64 `json:"compute_fraction"`
			} `json:"decode"`
			Bandwidth float64 `json:"bandwidth_gb_s"`
			Peak      float64 `json:"matmul_peak_gflop_s"`
			FMAPeak   float64 `json:"fma_peak_gflop_s"`
			Ceiling   float64 `json:"fma_ceiling_tokens_per_s"`
			Sampling  string  `json:"sampling"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: output is not one JSON object: %v\n%s", src, err, out)
		}
		if want := map[bool]string{false: "greedy", true: "full-logits"}[slices.Contains(src, "--full-logits")]; res.Sampling != want {
			t.Fatalf("%v: sampling %q, want %q", src, res.Sampling, want)
		}
		if res.Prefill <= 0 || res.Bandwidth <= 0 || res.Peak <= 0 || len(res.Decode) != 2 {
			t.Fatalf("%v: want a prefill rate, a bandwidth, a matmul peak and two decode entries, got %+v", src, res)
		}
		// a vector build measures the FMA peak, and no batch can outrun the ceiling it sets
		if res.FMAPeak < 0 || res.FMAPeak > 0 && !(res.Ceiling > 0) {
			t.Fatalf("%v: FMA peak %v GFLOP/s, ceiling %v tokens/s: want both positive or both 0", src, res.FMAPeak, res.Ceiling)
		}
		for i, want := range []int{1, 3} {
			d := res.Decode[i]
			if d.Batch != want || d.TokensPS <= 0 || d.Roofline <= 0 || d.Compute <= 0 {
				t.Fatalf("%v: decode entry %d = %+v, want batch %d with a rate, a roofline and a compute fraction", src, i, d, want)
			}
			if res.Ceiling > 0 && d.TokensPS > res.Ceiling {
				t.Fatalf("%v: batch %d decodes %.0f tokens/s, above the float32 FMA ceiling of %.0f", src, d.Batch, d.TokensPS, res.Ceiling)
			}
		}
	}
	if _, err := runCLI("bench", "engine", "--random-model", "no/such/config.json"); err == nil || !strings.Contains(err.Error(), "no/such/config.json") {
		t.Fatalf("a missing config: want an error naming it, got %v", err)
	}
	// a shape far beyond the machine's memory is refused before anything is allocated
	raw, err := os.ReadFile("../../testdata/models/qwen3-moe-tiny/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["num_hidden_layers"] = 1 << 40
	huge := filepath.Join(t.TempDir(), "config.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(huge, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI("bench", "engine", "--random-model", huge); err == nil || !strings.Contains(err.Error(), "scale hidden_size") {
		t.Fatalf("a random model larger than memory: want an error saying to scale it down, got %v", err)
	}
}

// TestBenchServeBadSampling: sampling and load flags out of range are refused before any
// request, with the flag named.
func TestBenchServeBadSampling(t *testing.T) {
	cases := []struct {
		flag, value string
	}{
		{"--temperature", "inf"}, {"--temperature", "-1"}, {"--top-p", "0"}, {"--top-p", "1.5"},
		{"--top-k", "-2"}, {"--min-p", "2"}, {"--min-p", "NaN"},
		{"--random-vocab-size", "0"}, {"--max-concurrency", "-1"},
	}
	if _, ok := memTotal(); ok { // prompts beyond the machine's memory, where it is known
		cases = append(cases, struct{ flag, value string }{"--num-prompts", "100000000000"})
	}
	for _, c := range cases {
		_, err := runCLI("bench", "serve", "--base-url", "http://127.0.0.1:1", "--disable-tqdm", c.flag, c.value)
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%s %s: want an error naming the flag, got %v", c.flag, c.value, err)
		}
	}
}

// TestBenchEngineText: the table gives each batch's gain over batch 1, as its rate divided by
// batch 1's (to the two decimals printed).
func TestBenchEngineText(t *testing.T) {
	out, err := runCLI("bench", "engine", "--model", "../../testdata/models/qwen3-dense-tiny", "--prompt-len", "8",
		"--context-len", "8", "--decode-steps", "2", "--batches", "1,3", "--repeats", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rates := map[int]float64{}
	gains := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line) // decode batch N RATE tokens/s ... [GAIN× batch 1] ...
		if len(f) < 4 || f[0] != "decode" {
			continue
		}
		n, _ := strconv.Atoi(f[2])
		rates[n], _ = strconv.ParseFloat(f[3], 64)
		for k := 4; k+2 < len(f); k++ {
			if strings.HasSuffix(f[k], "×") && f[k+1] == "batch" && f[k+2] == "1" {
				gains[n] = strings.TrimSuffix(f[k], "×")
			}
		}
	}
	if len(rates) != 2 || rates[1] <= 0 || rates[3] <= 0 {
		t.Fatalf("want decode lines for batches 1 and 3, got %v in\n%s", rates, out)
	}
	if gains[1] != "" {
		t.Errorf("batch 1 shows a gain over itself: %q\n%s", gains[1], out)
	}
	// the printed rates are rounded to 0.1, so the gain from them is near, not equal
	g, err := strconv.ParseFloat(gains[3], 64)
	if err != nil || g <= 0 || g < (rates[3]-0.05)/(rates[1]+0.05)-0.005 || g > (rates[3]+0.05)/(rates[1]-0.05)+0.005 {
		t.Errorf("batch 3's gain %q does not match %.1f ÷ %.1f tokens/s\n%s", gains[3], rates[3], rates[1], out)
	}
}
