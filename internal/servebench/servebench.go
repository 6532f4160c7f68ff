// Package servebench load-tests an OpenAI-compatible server the way `vllm bench serve` does:
// random prompts of a given length, a request rate (Poisson arrivals) or as fast as allowed,
// a concurrency cap, streaming completions timed token by token; it reports throughput and
// TTFT/TPOT/ITL/E2EL statistics under vLLM's result keys.
package servebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options shape a run (vLLM's flag names in comments).
type Options struct {
	BaseURL        string  // --base-url
	Endpoint       string  // --endpoint (default /v1/completions)
	Model          string  // --model ("" asks /v1/models)
	APIKey         string  // sent as a bearer token when set
	InputLen       int     // --random-input-len
	OutputLen      int     // --random-output-len
	RangeRatio     float64 // --random-range-ratio: lengths drawn from [len·(1-r), len·(1+r)]
	NumPrompts     int     // --num-prompts
	RequestRate    float64 // --request-rate (requests/s; +Inf: all at once)
	MaxConcurrency int     // --max-concurrency (0: no cap)
	Seed           int64   // --seed
	VocabSize      int     // prompt token ids are drawn from [0, VocabSize)
	// Sampling as vLLM's bench serve sends it: Temperature always (0, greedy, by default);
	// TopP, TopK and MinP when given (nil: left to the server)
	Temperature float64  // --temperature
	TopP        *float64 // --top-p
	TopK        *int     // --top-k
	MinP        *float64 // --min-p
	Progress    func()   // called as each request finishes, one call at a time
	Client      *http.Client
}

// Result carries vLLM's keys.
type Result struct {
	Date                 string      `json:"date"`
	Backend              string      `json:"backend"`
	ModelID              string      `json:"model_id"`
	NumPrompts           int         `json:"num_prompts"`
	RequestRate          any         `json:"request_rate"`
	Burstiness           float64     `json:"burstiness"`
	MaxConcurrency       *int        `json:"max_concurrency"`
	Duration             float64     `json:"duration"`
	Completed            int         `json:"completed"`
	Failed               int         `json:"failed"`
	TotalInputTokens     int         `json:"total_input_tokens"`
	TotalOutputTokens    int         `json:"total_output_tokens"`
	RequestThroughput    float64     `json:"request_throughput"`
	OutputThroughput     float64     `json:"output_throughput"`
	TotalTokenThroughput float64     `json:"total_token_throughput"`
	MaxConcurrentReqs    int         `json:"max_concurrent_requests"`
	InputLens            []int       `json:"input_lens"`
	OutputLens           []int       `json:"output_lens"`
	TTFTs                []float64   `json:"ttfts"`
	ITLs                 [][]float64 `json:"itls"`
	Errors               []string    `json:"errors"`
	MeanTTFTMs           float64     `json:"mean_ttft_ms"`
	MedianTTFTMs         float64     `json:"median_ttft_ms"`
	StdTTFTMs            float64     `json:"std_ttft_ms"`
	P99TTFTMs            float64     `json:"p99_ttft_ms"`
	MeanTPOTMs           float64     `json:"mean_tpot_ms"`
	MedianTPOTMs         float64     `json:"median_tpot_ms"`
	StdTPOTMs            float64     `json:"std_tpot_ms"`
	P99TPOTMs            float64     `json:"p99_tpot_ms"`
	MeanITLMs            float64     `json:"mean_itl_ms"`
	MedianITLMs          float64     `json:"median_itl_ms"`
	StdITLMs             float64     `json:"std_itl_ms"`
	P99ITLMs             float64     `json:"p99_itl_ms"`
	MeanE2ELMs           float64     `json:"mean_e2el_ms"`
	MedianE2ELMs         float64     `json:"median_e2el_ms"`
	StdE2ELMs            float64     `json:"std_e2el_ms"`
	P99E2ELMs            float64     `json:"p99_e2el_ms"`
}

type outcome struct {
	ok        bool
	err       string
	inputLen  int
	outputLen int
	ttft      float64
	itl       []float64
	e2el      float64
}

// Run sends the requests and measures them.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Endpoint == "" {
		o.Endpoint = "/v1/completions"
	}
	if o.VocabSize <= 0 {
		o.VocabSize = 1000
	}
	base := strings.TrimRight(o.BaseURL, "/")
	if o.Model == "" {
		m, err := firstModel(ctx, o.Client, base, o.APIKey)
		if err != nil {
			return nil, err
		}
		o.Model = m
	}
	r := rand.New(rand.NewPCG(uint64(o.Seed), 7))
	span := func(n int) int {
		lo, hi := int(float64(n)*(1-o.RangeRatio)), int(float64(n)*(1+o.RangeRatio))
		lo = max(lo, 1)
		return lo + r.IntN(max(hi-lo, 0)+1)
	}
	type prompt struct {
		ids []int
		out int
	}
	prompts := make([]prompt, o.NumPrompts)
	for i := range prompts {
		ids := make([]int, span(o.InputLen))
		for k := range ids {
			ids[k] = r.IntN(o.VocabSize)
		}
		prompts[i] = prompt{ids, span(o.OutputLen)}
	}
	// One warm-up request, as vLLM sends, so start-up costs are not in the figures.
	if o.NumPrompts > 0 {
		if w := send(ctx, o, base, prompts[0].ids, min(prompts[0].out, 4)); !w.ok {
			return nil, fmt.Errorf("warm-up request failed: %s", w.err)
		}
	}
	var sem chan struct{}
	if o.MaxConcurrency > 0 {
		sem = make(chan struct{}, o.MaxConcurrency)
	}
	outs := make([]outcome, len(prompts))
	var wg sync.WaitGroup
	var mu sync.Mutex
	inFlight, peak := 0, 0
	start := time.Now()
	for i, p := range prompts {
		if i > 0 && o.RequestRate > 0 && !math.IsInf(o.RequestRate, 1) {
			wait := time.Duration(r.ExpFloat64() / o.RequestRate * float64(time.Second))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			outs[i] = send(ctx, o, base, p.ids, p.out)
			mu.Lock()
			inFlight--
			if o.Progress != nil {
				o.Progress() // under the lock: callers need not synchronise their callback
			}
			mu.Unlock()
			if sem != nil {
				<-sem
			}
		}()
	}
	wg.Wait()
	dur := time.Since(start).Seconds()
	return summarize(o, outs, dur, peak), nil
}

func firstModel(ctx context.Context, c *http.Client, base, key string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/models", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking %s/v1/models which model to use: %w", base, err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Data) == 0 {
		return "", fmt.Errorf("%s/v1/models lists no model (status %d): give --model", base, resp.StatusCode)
	}
	return out.Data[0].ID, nil
}

// send streams one completion and times its tokens.
func send(ctx context.Context, o Options, base string, ids []int, maxTokens int) outcome {
	out := outcome{inputLen: len(ids)}
	fields := map[string]any{
		"model": o.Model, "prompt": ids, "max_tokens": maxTokens, "temperature": o.Temperature, "ignore_eos": true,
		"stream": true, "stream_options": map[string]any{"include_usage": true},
	}
	if o.TopP != nil {
		fields["top_p"] = *o.TopP
	}
	if o.TopK != nil {
		fields["top_k"] = *o.TopK
	}
	if o.MinP != nil {
		fields["min_p"] = *o.MinP
	}
	body, err := json.Marshal(fields)
	if err != nil { // a non-finite number: Run's caller checks, this is the backstop
		out.err = fmt.Sprintf("encoding the request: %v", err)
		return out
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+o.Endpoint, bytes.NewReader(body))
	if err != nil {
		out.err = err.Error()
		return out
	}
	req.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	start := time.Now()
	resp, err := o.Client.Do(req)
	if err != nil {
		out.err = err.Error()
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		out.err = fmt.Sprintf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		return out
	}
	last := start
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			break
		}
		var ch struct {
			Choices []struct {
				Text         string  `json:"text"`
				TokenIDs     []int   `json:"token_ids"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ch); err != nil {
			out.err = "bad chunk: " + err.Error()
			return out
		}
		if ch.Error != nil {
			out.err = ch.Error.Message
			return out
		}
		if ch.Usage != nil {
			out.outputLen = ch.Usage.CompletionTokens
		}
		if len(ch.Choices) > 0 && (ch.Choices[0].Text != "" || len(ch.Choices[0].TokenIDs) > 0) {
			now := time.Now()
			if out.ttft == 0 {
				out.ttft = now.Sub(start).Seconds()
			} else {
				out.itl = append(out.itl, now.Sub(last).Seconds())
			}
			last = now
		}
	}
	if err := sc.Err(); err != nil {
		out.err = err.Error()
		return out
	}
	out.e2el = time.Since(start).Seconds()
	out.ok = out.ttft > 0
	if !out.ok {
		out.err = "no tokens came back"
	}
	return out
}

func stats(xs []float64) (mean, median, std, p99 float64) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	for _, x := range s {
		mean += x
	}
	mean /= float64(len(s))
	for _, x := range s {
		std += (x - mean) * (x - mean)
	}
	std = math.Sqrt(std / float64(len(s)))
	pct := func(p float64) float64 { // numpy's linear interpolation, as vLLM uses
		pos := p / 100 * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(s)-1)
		return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
	}
	return mean, pct(50), std, pct(99)
}

func summarize(o Options, outs []outcome, dur float64, peak int) *Result {
	res := &Result{Date: time.Now().Format("20060102-150405"), Backend: "openai", ModelID: o.Model, NumPrompts: o.NumPrompts,
		Burstiness: 1, Duration: dur, MaxConcurrentReqs: peak, Errors: []string{}, InputLens: []int{}, OutputLens: []int{}, TTFTs: []float64{}, ITLs: [][]float64{}}
	if math.IsInf(o.RequestRate, 1) || o.RequestRate <= 0 {
		res.RequestRate = "inf"
	} else {
		res.RequestRate = o.RequestRate
	}
	if o.MaxConcurrency > 0 {
		mc := o.MaxConcurrency
		res.MaxConcurrency = &mc
	}
	var ttfts, tpots, itls, e2els []float64
	for _, r := range outs {
		res.InputLens = append(res.InputLens, r.inputLen)
		res.OutputLens = append(res.OutputLens, r.outputLen)
		res.TTFTs = append(res.TTFTs, r.ttft)
		res.ITLs = append(res.ITLs, append([]float64{}, r.itl...))
		res.Errors = append(res.Errors, r.err)
		if !r.ok {
			res.Failed++
			continue
		}
		res.Completed++
		res.TotalInputTokens += r.inputLen
		res.TotalOutputTokens += r.outputLen
		ttfts = append(ttfts, r.ttft*1e3)
		if r.outputLen > 1 {
			tpots = append(tpots, (r.e2el-r.ttft)/float64(r.outputLen-1)*1e3)
		}
		for _, x := range r.itl {
			itls = append(itls, x*1e3)
		}
		e2els = append(e2els, r.e2el*1e3)
	}
	if dur > 0 {
		res.RequestThroughput = float64(res.Completed) / dur
		res.OutputThroughput = float64(res.TotalOutputTokens) / dur
		res.TotalTokenThroughput = float64(res.TotalInputTokens+res.TotalOutputTokens) / dur
	}
	res.MeanTTFTMs, res.MedianTTFTMs, res.StdTTFTMs, res.P99TTFTMs = stats(ttfts)
	res.MeanTPOTMs, res.MedianTPOTMs, res.StdTPOTMs, res.P99TPOTMs = stats(tpots)
	res.MeanITLMs, res.MedianITLMs, res.StdITLMs, res.P99ITLMs = stats(itls)
	res.MeanE2ELMs, res.MedianE2ELMs, res.StdE2ELMs, res.P99E2ELMs = stats(e2els)
	return res
}

// Print writes the result as vLLM's benchmark prints it.
func Print(w io.Writer, r *Result) {
	line := func(k string, v any) {
		switch x := v.(type) {
		case float64:
			fmt.Fprintf(w, "%-40s %-10.2f\n", k, x)
		default:
			fmt.Fprintf(w, "%-40s %-10v\n", k, x)
		}
	}
	fmt.Fprintf(w, "%s\n", center(" Serving Benchmark Result ", 50, '='))
	line("Successful requests:", r.Completed)
	if r.Failed > 0 {
		line("Failed requests:", r.Failed)
	}
	if r.MaxConcurrency != nil {
		line("Maximum request concurrency:", *r.MaxConcurrency)
	}
	line("Benchmark duration (s):", r.Duration)
	line("Total input tokens:", r.TotalInputTokens)
	line("Total generated tokens:", r.TotalOutputTokens)
	line("Request throughput (req/s):", r.RequestThroughput)
	line("Output token throughput (tok/s):", r.OutputThroughput)
	line("Peak concurrent requests:", r.MaxConcurrentReqs)
	line("Total Token throughput (tok/s):", r.TotalTokenThroughput)
	section := func(title, short string, mean, median, p99 float64) {
		fmt.Fprintf(w, "%s\n", center(title, 50, '-'))
		line("Mean "+short+" (ms):", mean)
		line("Median "+short+" (ms):", median)
		line("P99 "+short+" (ms):", p99)
	}
	section("Time to First Token", "TTFT", r.MeanTTFTMs, r.MedianTTFTMs, r.P99TTFTMs)
	section("Time per Output Token (excl. 1st token)", "TPOT", r.MeanTPOTMs, r.MedianTPOTMs, r.P99TPOTMs)
	section("Inter-token Latency", "ITL", r.MeanITLMs, r.MedianITLMs, r.P99ITLMs)
	fmt.Fprintf(w, "%s\n", strings.Repeat("=", 50))
}

func center(s string, width int, fill byte) string {
	if len(s) >= width {
		return s
	}
	left := (width - len(s)) / 2
	return strings.Repeat(string(fill), left) + s + strings.Repeat(string(fill), width-len(s)-left)
}

// ErrFailed says some requests failed; the result still describes the rest.
var ErrFailed = errors.New("some requests failed")
