package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/strata-ai/strata/internal/atomicfile"
	"github.com/strata-ai/strata/internal/servebench"
)

func newBenchServeCmd() *cobra.Command {
	var o servebench.Options
	var dataset, resultDir, resultFile, rate string
	var save, noProgress bool
	var topP, minP float64
	var topK int
	cmd := &cobra.Command{
		Use:   "serve --base-url URL [--num-prompts N --max-concurrency C ...]",
		Short: "Load-test an OpenAI-compatible server as vllm bench serve does",
		Long: `Send random prompts to a running server (strata serve, or vllm serve) and report
request and token throughput and TTFT/TPOT/ITL, as vllm bench serve does.

  strata bench serve --base-url http://localhost:8000 --num-prompts 64 --max-concurrency 16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataset != "random" {
				return fmt.Errorf("--dataset-name %q: strata has the random dataset", dataset)
			}
			if o.BaseURL == "" {
				return errors.New("give --base-url, e.g. http://localhost:8000")
			}
			if o.NumPrompts < 1 || o.InputLen < 1 || o.OutputLen < 1 {
				return errors.New("--num-prompts, --random-input-len and --random-output-len must be at least 1")
			}
			if o.RangeRatio < 0 || o.RangeRatio >= 1 {
				return fmt.Errorf("--random-range-ratio %v: want [0, 1)", o.RangeRatio)
			}
			switch {
			case o.VocabSize < 1:
				return fmt.Errorf("--random-vocab-size %d: want at least 1", o.VocabSize)
			case o.MaxConcurrency < 0:
				return fmt.Errorf("--max-concurrency %d: want 0 (no limit) or more", o.MaxConcurrency)
			}
			// the prompts are drawn before the first request, as vLLM's are: their token ids
			// must fit in memory with room to spare
			if ram, ok := memTotal(); ok {
				if need := 8 * float64(o.NumPrompts) * float64(o.InputLen) * (1 + o.RangeRatio); need > float64(ram)/4 {
					return fmt.Errorf("--num-prompts %d of --random-input-len %d take %.1f GB of token ids, more than a quarter of this machine's %.1f GB: send fewer or shorter prompts", o.NumPrompts, o.InputLen, need/1e9, float64(ram)/1e9)
				}
			}
			// as vLLM's bench serve: a sampling flag given is sent, one not given is left to
			// the server (which fills it from the model's generation_config.json)
			fl := cmd.Flags()
			switch {
			case o.Temperature < 0 || math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0):
				return fmt.Errorf("--temperature %v: want 0 (greedy) or a finite positive number", o.Temperature)
			case fl.Changed("top-p") && !(topP > 0 && topP <= 1):
				return fmt.Errorf("--top-p %v: want (0, 1]", topP)
			case fl.Changed("top-k") && topK < -1:
				return fmt.Errorf("--top-k %d: want -1 (off), 0 or a positive number", topK)
			case fl.Changed("min-p") && !(minP >= 0 && minP <= 1):
				return fmt.Errorf("--min-p %v: want [0, 1]", minP)
			}
			if fl.Changed("top-p") {
				o.TopP = &topP
			}
			if fl.Changed("top-k") {
				o.TopK = &topK
			}
			if fl.Changed("min-p") {
				o.MinP = &minP
			}
			o.RequestRate = math.Inf(1)
			if rate != "inf" {
				if _, err := fmt.Sscanf(rate, "%g", &o.RequestRate); err != nil || o.RequestRate <= 0 {
					return fmt.Errorf("--request-rate %q: want a positive number of requests per second, or inf", rate)
				}
			}
			if o.APIKey == "" {
				o.APIKey = os.Getenv("OPENAI_API_KEY")
			}
			out := cmd.OutOrStdout()
			var bar *mpb.Bar
			var p *mpb.Progress
			if !noProgress {
				p = mpb.New(mpb.WithOutput(cmd.ErrOrStderr()), mpb.WithWidth(40))
				bar = p.AddBar(int64(o.NumPrompts), mpb.PrependDecorators(decor.Name("requests "), decor.CountersNoUnit("%d/%d")),
					mpb.AppendDecorators(decor.Percentage(), decor.Name(" "), decor.EwmaETA(decor.ET_STYLE_GO, 30)))
				o.Progress = func() { bar.Increment() }
			}
			res, err := servebench.Run(cmd.Context(), o)
			if p != nil {
				if err != nil {
					bar.Abort(false)
				}
				p.Wait()
			}
			if err != nil {
				return err
			}
			servebench.Print(out, res)
			if save {
				name := resultFile
				if name == "" {
					conc := ""
					if o.MaxConcurrency > 0 {
						conc = fmt.Sprintf("-concurrency%d", o.MaxConcurrency)
					}
					parts := strings.Split(strings.TrimRight(res.ModelID, "/"), "/")
					name = fmt.Sprintf("openai-%vqps%s-%s-%s.json", res.RequestRate, conc, parts[len(parts)-1], res.Date)
				}
				path := filepath.Join(resultDir, name)
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return fmt.Errorf("--save-result: %w", err)
				}
				if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("--save-result: %w", err)
				}
				fmt.Fprintf(out, "saved %s\n", path)
			}
			if res.Failed > 0 {
				return fmt.Errorf("%d of %d requests failed, e.g.: %s", res.Failed, o.NumPrompts, firstError(res.Errors))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.BaseURL, "base-url", "", "the server, e.g. http://localhost:8000")
	f.StringVar(&o.Endpoint, "endpoint", "/v1/completions", "the completions endpoint")
	f.StringVar(&o.Model, "model", "", "model name to request (default: the server's first)")
	f.StringVar(&dataset, "dataset-name", "random", "prompts: random (random token ids)")
	f.IntVar(&o.InputLen, "random-input-len", 1024, "prompt tokens per request")
	f.IntVar(&o.OutputLen, "random-output-len", 128, "tokens generated per request (EOS ignored)")
	f.Float64Var(&o.RangeRatio, "random-range-ratio", 0, "draw lengths uniformly within ±this share of the given ones")
	f.IntVar(&o.VocabSize, "random-vocab-size", 1000, "prompt token ids are drawn from [0, this)")
	f.IntVar(&o.NumPrompts, "num-prompts", 1000, "requests to send")
	f.StringVar(&rate, "request-rate", "inf", "requests per second (Poisson arrivals), or inf to send all at once")
	f.IntVar(&o.MaxConcurrency, "max-concurrency", 0, "most requests in flight at once (0: no limit)")
	f.Int64Var(&o.Seed, "seed", 0, "random seed for prompts and arrivals")
	f.Float64Var(&o.Temperature, "temperature", 0, "sampling temperature sent with every request (0: greedy)")
	f.Float64Var(&topP, "top-p", 1, "top_p sent with every request (not given: left to the server)")
	f.IntVar(&topK, "top-k", -1, "top_k sent with every request, -1 for off (not given: left to the server)")
	f.Float64Var(&minP, "min-p", 0, "min_p sent with every request (not given: left to the server)")
	f.BoolVar(&save, "save-result", false, "write the result as JSON (vLLM's keys)")
	f.StringVar(&resultDir, "result-dir", ".", "folder for --save-result")
	f.StringVar(&resultFile, "result-filename", "", "file name for --save-result (default like vLLM's)")
	f.BoolVar(&noProgress, "disable-tqdm", false, "no progress bar")
	return cmd
}

func firstError(errs []string) string {
	for _, e := range errs {
		if e != "" {
			return e
		}
	}
	return "unknown"
}
