package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/sampling"
	"github.com/strata-ai/strata/internal/tokenizer"
)

// parseIDs reads "1,2,3" (spaces allowed) into token ids.
func parseIDs(flag, s string) ([]int, error) {
	return parseInts(flag, s, "token id", "non-negative integers separated by commas, e.g. 1,2,3", 0)
}

// parseInts reads a comma-separated list of integers of at least least, each naming a what;
// an empty entry (1,,3 or a trailing comma) is an error, not skipped.
func parseInts(flag, s, what, want string, least int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%s: nothing given (want %s)", flag, want)
	}
	var out []int
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("%s: entry %d of %q is empty (want %s)", flag, i+1, s, want)
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < least {
			return nil, fmt.Errorf("%s: %q is not a %s (want %s)", flag, f, what, want)
		}
		out = append(out, v)
	}
	return out, nil
}

func newLogitsCmd() *cobra.Command {
	var dir, ids, out string
	cmd := &cobra.Command{
		Use:   "logits --model DIR --prompt-ids 1,2,3 --out FILE.safetensors",
		Short: "Write the model's logits at every prompt position to a safetensors file",
		Long: `Run a prompt through the model once and write tensor "logits" (float32, [tokens, vocab])
to a safetensors file, for comparing with Hugging Face transformers. The file is written
atomically: it appears whole or not at all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || ids == "" || out == "" {
				return errors.New("--model, --prompt-ids and --out are all required")
			}
			// checked before the model runs, and named as given (not the temporary file the
			// write goes through)
			if st, err := os.Stat(out); err == nil && st.IsDir() {
				return fmt.Errorf("--out %s is a folder: give the path of a .safetensors file", out)
			}
			if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
				return fmt.Errorf("--out %s: the folder %s does not exist", out, filepath.Dir(out))
			}
			prompt, err := parseIDs("--prompt-ids", ids)
			if err != nil {
				return err
			}
			m, err := qwen3.Load(dir)
			if err != nil {
				return err
			}
			defer m.Close()
			o, err := m.Step(m.NewCache(), prompt, false)
			if err != nil {
				return err
			}
			V := m.Cfg.Vocab
			// a NaN anywhere in the trunk reaches every logit of its position and the ones
			// after: such a file compares with nothing, so none is written
			for t, row := range o.Logits {
				if slices.ContainsFunc(row, func(x float32) bool { return x != x }) {
					return fmt.Errorf("the logits at position %d are NaN (%s): the model's weights are probably corrupt or too large for float32; check the safetensors files against their source; nothing was written", t, dir)
				}
			}
			data := make([]byte, 4*len(prompt)*V)
			for t, row := range o.Logits {
				for v, x := range row {
					binary.LittleEndian.PutUint32(data[4*(t*V+v):], math.Float32bits(x))
				}
			}
			if err := safetensors.WriteFile(out, []safetensors.Tensor{{Name: "logits", DType: safetensors.F32, Shape: []int{len(prompt), V}, Data: data}},
				map[string]string{"model": filepath.Base(filepath.Clean(dir)), "prompt_ids": ids}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote logits [%d %d] to %s\n", len(prompt), V, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "model", "", "Hugging Face model folder (config.json, *.safetensors)")
	cmd.Flags().StringVar(&ids, "prompt-ids", "", "prompt as token ids, comma-separated")
	cmd.Flags().StringVar(&out, "out", "", "output .safetensors file")
	return cmd
}

// eosIDs reads the end-of-sequence token ids as transformers does: generation_config.json's
// eos_token_id, else config.json's (either may be one id or a list). A file that is there but
// broken is an error naming it and the key, not a silent loss of the stop token.
func eosIDs(dir string) ([]int, error) {
	for _, f := range []string{"generation_config.json", "config.json"} {
		path := filepath.Join(dir, f)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var raw struct {
			EOS json.RawMessage `json:"eos_token_id"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("%s is not valid JSON: %v", path, err)
		}
		if len(raw.EOS) == 0 || string(raw.EOS) == "null" {
			continue
		}
		var many []int
		var one int
		switch {
		case json.Unmarshal(raw.EOS, &one) == nil:
			many = []int{one}
		case json.Unmarshal(raw.EOS, &many) == nil:
		default:
			return nil, fmt.Errorf("%s: eos_token_id is %s: want a token id or a list of token ids", path, raw.EOS)
		}
		for _, id := range many {
			if id < 0 {
				return nil, fmt.Errorf("%s: eos_token_id %d is not a token id", path, id)
			}
		}
		return many, nil
	}
	return nil, nil
}

func newGenerateCmd() *cobra.Command {
	var dir, ids, promptText string
	var maxTokens int
	var p sampling.Params
	var jsonOut, ignoreEOS bool
	var dtype, kvDType string
	var n int
	cmd := &cobra.Command{
		Use:   "generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N --temperature T --top-p P --top-k K --seed S] [--json]",
		Short: "Generate tokens after a prompt",
		Long: `Generate up to --max-tokens tokens after a prompt, stopping early at the model's
end-of-sequence token (generation_config.json). The prompt is text (the folder needs a
tokenizer.json; it is used as is, without the chat template: see strata tokenize) or token
ids (any folder). Temperature 0 is greedy; otherwise temperature, top-k and top-p apply and
the draw is repeatable: --seed (0 by default) picks it. generation_config.json's sampling
defaults are not applied here (serve applies them). With --json it prints {"token_ids": [...], "text": ...}
with the generated tokens only; text is null when the folder has no tokenizer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || (ids == "") == (promptText == "") {
				return errors.New("give --model and exactly one of --prompt or --prompt-ids")
			}
			var tk *tokenizer.Tokenizer
			if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil || promptText != "" {
				if tk, err = loadTokenizer(dir, "give the prompt as token ids (--prompt-ids) or use a folder with a tokenizer"); err != nil {
					return err
				}
			}
			var prompt []int
			var err error
			if promptText != "" {
				if prompt, err = tk.Encode(promptText); err != nil {
					return err
				}
				if len(prompt) == 0 {
					return errors.New("--prompt is empty")
				}
			} else if prompt, err = parseIDs("--prompt-ids", ids); err != nil {
				return err
			}
			if maxTokens < 1 {
				return fmt.Errorf("--max-tokens %d: want at least 1", maxTokens)
			}
			if !(p.RepetitionPenalty > 0) {
				return fmt.Errorf("--repetition-penalty %v: want a number above 0 (1 is off)", p.RepetitionPenalty)
			}
			if err := p.Validate(); err != nil {
				return err
			}
			prec, err := parseDType(dtype)
			if err != nil {
				return err
			}
			kvType, err := parseKVDType(kvDType, prec)
			if err != nil {
				return err
			}
			m, err := qwen3.Load(dir)
			if err != nil {
				return err
			}
			defer m.Close()
			m.SetPrecision(prec)
			m.SetKVCacheDType(kvType)
			stop := map[int]bool{}
			eos, err := eosIDs(dir)
			if err != nil {
				return err
			}
			if !ignoreEOS {
				for _, id := range eos {
					stop[id] = true
				}
			}
			if n < 1 || n > 256 {
				return fmt.Errorf("--n %d: want 1 to 256 completions", n)
			}
			// as vLLM: a prompt must leave the model room for a token; the output stops at the
			// model's length (max_position_embeddings) as it stops at --max-tokens
			if maxPos := m.Cfg.MaxPositions; maxPos > 0 {
				if len(prompt) >= maxPos {
					return fmt.Errorf("the prompt has %d tokens and the model takes at most %d (max_position_embeddings in config.json), output included: shorten the prompt", len(prompt), maxPos)
				}
				if room := maxPos - len(prompt); maxTokens > room {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: --max-tokens %d: the model has room for %d more tokens after the prompt (max_position_embeddings %d); the output stops there\n", maxTokens, room, maxPos)
					maxTokens = room
				}
			}
			for _, id := range prompt {
				if id >= m.Cfg.Vocab {
					hint := ""
					if promptText != "" {
						hint = ": the folder's tokenizer.json does not belong to its model"
					}
					return fmt.Errorf("prompt token %d is outside the model's vocabulary (0..%d)%s", id, m.Cfg.Vocab-1, hint)
				}
			}
			// the engine runs the n completions together: continuous batching over a paged
			// KV cache sized for all of them
			var stopIDs []int
			for id := range stop {
				stopIDs = append(stopIDs, id)
			}
			const bs = 16
			total := len(prompt) + maxTokens
			cfg := engine.Config{
				SchedulerConfig: engine.SchedulerConfig{MaxNumSeqs: n, MaxNumBatchedTokens: max(2048, total), ChunkedPrefill: true, MaxModelLen: total},
				BlockSize:       bs,
				KVCacheBytes:    int64(n*((total+bs-1)/bs)) * m.BytesPerBlock(bs),
			}
			e, err := engine.New(m, cfg)
			if err != nil {
				return err
			}
			for i := range n {
				sp := p
				sp.Seed = p.Seed + uint64(i)
				if err := e.Add(engine.Request{ID: strconv.Itoa(i), Prompt: prompt, MaxTokens: maxTokens, Sampling: sp, StopIDs: stopIDs}); err != nil {
					return err
				}
			}
			outs, err := e.RunAll()
			if err != nil {
				return err
			}
			type choice struct {
				TokenIDs []int   `json:"token_ids"`
				Text     *string `json:"text"`
			}
			choices := make([]choice, n)
			for i := range n {
				choices[i].TokenIDs = outs[strconv.Itoa(i)]
				if tk != nil {
					s, err := tk.Decode(choices[i].TokenIDs, true)
					if err != nil {
						return err
					}
					choices[i].Text = &s
				}
			}
			w := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(w)
				enc.SetEscapeHTML(false)
				if n == 1 {
					return enc.Encode(choices[0])
				}
				return enc.Encode(struct {
					Choices []choice `json:"choices"`
				}{choices})
			}
			for _, c := range choices {
				if c.Text != nil {
					fmt.Fprintln(w, *c.Text)
					continue
				}
				strs := make([]string, len(c.TokenIDs))
				for i, id := range c.TokenIDs {
					strs[i] = strconv.Itoa(id)
				}
				fmt.Fprintln(w, strings.Join(strs, ","))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "Hugging Face model folder (config.json, *.safetensors)")
	f.StringVar(&ids, "prompt-ids", "", "prompt as token ids, comma-separated")
	f.StringVar(&promptText, "prompt", "", "prompt as text (needs tokenizer.json in the folder)")
	f.IntVar(&maxTokens, "max-tokens", 16, "most tokens to generate")
	f.Float64Var(&p.Temperature, "temperature", 0, "0: greedy; otherwise sampling temperature")
	f.Float64Var(&p.TopP, "top-p", 1, "nucleus sampling: keep the smallest set of tokens whose probability reaches this")
	f.IntVar(&p.TopK, "top-k", 0, "keep only the k most likely tokens (0: all)")
	f.Float64Var(&p.MinP, "min-p", 0, "drop tokens below this fraction of the top token's probability")
	f.Float64Var(&p.PresencePenalty, "presence-penalty", 0, "subtract this from tokens already generated (-2..2)")
	f.Float64Var(&p.FrequencyPenalty, "frequency-penalty", 0, "subtract this per earlier occurrence (-2..2)")
	f.Float64Var(&p.RepetitionPenalty, "repetition-penalty", 1, "divide logits of tokens seen in prompt or output by this (1: off)")
	f.Uint64Var(&p.Seed, "seed", 0, "random seed for sampling")
	f.BoolVar(&jsonOut, "json", false, `print {"token_ids": [...], "text": "..."} (text null without a tokenizer)`)
	f.BoolVar(&ignoreEOS, "ignore-eos", false, "keep generating past the end-of-sequence token")
	addDTypeFlag(f, &dtype)
	addKVDTypeFlag(f, &kvDType)
	f.IntVar(&n, "n", 1, `completions to sample (seeds seed, seed+1, ...); with n > 1, --json prints {"choices": [...]}`)
	return cmd
}
