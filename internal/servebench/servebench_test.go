package servebench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// fakeServer streams max_tokens chunks per request, as an OpenAI completions server does,
// and records the largest number of requests it saw at once.
func fakeServer(t *testing.T, peak *atomic.Int64) *httptest.Server {
	return fakeServerSampling(t, peak, nil)
}

// fakeServerSampling is fakeServer, handing each request's sampling fields to sampled.
func fakeServerSampling(t *testing.T, peak *atomic.Int64, sampled func(temp, topP *float64, topK *int)) *httptest.Server {
	var cur atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"data": [{"id": "m"}]}`)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		var req struct {
			Prompt      []int    `json:"prompt"`
			MaxTokens   int      `json:"max_tokens"`
			Model       string   `json:"model"`
			Temperature *float64 `json:"temperature"`
			TopP        *float64 `json:"top_p"`
			TopK        *int     `json:"top_k"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "m" {
			http.Error(w, `{"error": {"message": "bad"}}`, 400)
			return
		}
		if sampled != nil {
			sampled(req.Temperature, req.TopP, req.TopK)
		}
		fl := w.(http.Flusher)
		for i := range req.MaxTokens {
			fmt.Fprintf(w, "data: {\"choices\": [{\"text\": \"t%d\"}]}\n\n", i)
			fl.Flush()
		}
		fmt.Fprintf(w, "data: {\"choices\": [], \"usage\": {\"completion_tokens\": %d}}\n\ndata: [DONE]\n\n", req.MaxTokens)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func TestRunCountsAndCaps(t *testing.T) {
	var peak atomic.Int64
	ts := fakeServer(t, &peak)
	done := 0
	res, err := Run(context.Background(), Options{BaseURL: ts.URL, InputLen: 10, OutputLen: 5, NumPrompts: 20, MaxConcurrency: 3,
		RequestRate: math.Inf(1), Progress: func() { done++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != 20 || res.Failed != 0 || res.TotalOutputTokens != 100 || res.TotalInputTokens != 200 || done != 20 {
		t.Fatalf("completed %d failed %d out %d in %d progress %d", res.Completed, res.Failed, res.TotalOutputTokens, res.TotalInputTokens, done)
	}
	if peak.Load() > 3 || res.MaxConcurrentReqs > 3 {
		t.Fatalf("concurrency cap 3 exceeded: server saw %d, client counted %d", peak.Load(), res.MaxConcurrentReqs)
	}
	if res.ModelID != "m" || res.MeanTTFTMs <= 0 || res.MedianITLMs < 0 || len(res.ITLs) != 20 || len(res.ITLs[0]) != 4 {
		t.Fatalf("result %+v", res)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	_ = json.Unmarshal(b, &keys)
	for _, k := range []string{"completed", "request_throughput", "output_throughput", "total_token_throughput", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "p99_itl_ms"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("result JSON lacks vLLM's key %q", k)
		}
	}
}

func TestStats(t *testing.T) {
	mean, median, std, p99 := stats([]float64{1, 2, 3, 4})
	if mean != 2.5 || median != 2.5 || math.Abs(std-math.Sqrt(1.25)) > 1e-12 || math.Abs(p99-3.97) > 1e-12 {
		t.Fatalf("stats: %v %v %v %v", mean, median, std, p99)
	}
}

// TestSamplingSent: temperature goes with every request (0 by default, as vLLM's bench serve
// sends greedy), top_p and top_k whenever given, -1 included.
func TestSamplingSent(t *testing.T) {
	for _, c := range []struct {
		o          Options
		temp, topP float64
		topK       int
		hasP, hasK bool
	}{
		{Options{}, 0, 0, 0, false, false},
		{Options{Temperature: 0.7, TopP: ptr(0.9), TopK: ptr(20)}, 0.7, 0.9, 20, true, true},
		{Options{TopK: ptr(-1)}, 0, 0, -1, false, true},
	} {
		var peak atomic.Int64
		var bad atomic.Value
		ts := fakeServerSampling(t, &peak, func(temp, topP *float64, topK *int) {
			switch {
			case temp == nil || *temp != c.temp:
				bad.Store(fmt.Sprintf("temperature %v, want %v", temp, c.temp))
			case (topP != nil) != c.hasP || topP != nil && *topP != c.topP:
				bad.Store(fmt.Sprintf("top_p %v, want %v (sent: %v)", topP, c.topP, c.hasP))
			case (topK != nil) != c.hasK || topK != nil && *topK != c.topK:
				bad.Store(fmt.Sprintf("top_k %v, want %v (sent: %v)", topK, c.topK, c.hasK))
			}
		})
		o := c.o
		o.BaseURL, o.InputLen, o.OutputLen, o.NumPrompts, o.RequestRate = ts.URL, 4, 2, 3, math.Inf(1)
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if msg := bad.Load(); msg != nil {
			t.Fatalf("%+v: %s", c.o, msg)
		}
	}
}

func ptr[T any](v T) *T { return &v }
