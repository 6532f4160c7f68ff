package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/strata-ai/strata/internal/chattemplate"
	"github.com/strata-ai/strata/internal/tokenizer"
)

// loadTokenizer reads DIR/tokenizer.json, saying what is missing if it is not there and, in
// instead, what the command can do without one.
func loadTokenizer(dir, instead string) (*tokenizer.Tokenizer, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--model %s: no such model folder", dir)
	}
	path := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s has no tokenizer.json: %s", dir, instead)
	}
	return tokenizer.Load(path)
}

// readJSONFile decodes a JSON file keeping object key order (for the chat template's tojson).
func readJSONFile(flag, path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	v, err := chattemplate.DecodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: not valid JSON: %w", flag, path, err)
	}
	return v, nil
}

// renderChat applies the model's chat template to a messages file (and optional tools file).
// enableThinking is nil when the flag was not given: the template then sees no
// enable_thinking at all, as with transformers' apply_chat_template called without it.
func renderChat(dir, messagesFile, toolsFile string, addGenerationPrompt, continueFinal bool, enableThinking *bool) (string, error) {
	tpl, err := chattemplate.Load(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return "", err
	}
	msgs, err := readJSONFile("--messages", messagesFile)
	if err != nil {
		return "", err
	}
	list, ok := msgs.([]any)
	switch {
	case !ok:
		return "", errors.New("--messages: want a JSON array of messages like [{\"role\": \"user\", \"content\": \"hi\"}]")
	case len(list) == 0:
		return "", errors.New("--messages: the array is empty; give at least one message like {\"role\": \"user\", \"content\": \"hi\"}")
	}
	for i, m := range list {
		mm, ok := m.(map[string]any)
		if !ok {
			return "", fmt.Errorf("--messages: message %d is not an object", i)
		}
		if _, ok := mm["role"].(string); !ok {
			return "", fmt.Errorf("--messages: message %d has no \"role\"", i)
		}
	}
	vars := map[string]any{"messages": list, "add_generation_prompt": addGenerationPrompt}
	if enableThinking != nil {
		vars["enable_thinking"] = *enableThinking
	}
	if toolsFile != "" {
		tools, err := readJSONFile("--tools", toolsFile)
		if err != nil {
			return "", err
		}
		if _, ok := tools.([]any); !ok {
			return "", errors.New("--tools: want a JSON array of OpenAI tool definitions")
		}
		vars["tools"] = tools
	}
	text, err := tpl.Render(vars)
	if err == nil && continueFinal {
		final, ok := list[len(list)-1].(map[string]any)["content"].(string)
		if !ok {
			return "", errors.New("--continue-final-message: the last message's content must be a string to continue")
		}
		return chattemplate.ContinueFinal(text, final)
	}
	if err != nil {
		for i, m := range list {
			if c, has := m.(map[string]any)["content"]; has && c == nil {
				return "", fmt.Errorf("%w (message %d's content is null; Hugging Face's apply_chat_template fails on it too, while a vLLM server passes \"\": give \"\")", err, i)
			}
			if _, isList := m.(map[string]any)["content"].([]any); isList {
				// transformers hands the template the content as given, and Qwen3's template
				// calls string methods on it: this fails there too
				return "", fmt.Errorf("%w (message %d's content is a list of parts; Hugging Face's apply_chat_template passes it to the template as is, and this template wants a string: join the text parts)", err, i)
			}
		}
	}
	return text, err
}

func newTokenizeCmd() *cobra.Command {
	var dir, text, messages, tools string
	var addGen, continueFinal, thinking, printText bool
	cmd := &cobra.Command{
		Use:   "tokenize --model DIR (--text T | --messages FILE.json [--tools FILE.json]) [--add-generation-prompt | --continue-final-message] [--enable-thinking=false] [--print-text]",
		Short: `Turn text or a chat into token ids, printing {"tokens": [...], "count": N} as vLLM's /tokenize`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hasText := cmd.Flags().Changed("text")
			if dir == "" || hasText == (messages != "") {
				return errors.New("give --model and exactly one of --text or --messages")
			}
			if hasText {
				for _, name := range []string{"tools", "add-generation-prompt", "continue-final-message", "enable-thinking"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s applies to a chat: use it with --messages, not --text", name)
					}
				}
			}
			if addGen && continueFinal {
				return errors.New("--continue-final-message continues the last message, --add-generation-prompt opens a new one: give one of them")
			}
			tk, err := loadTokenizer(dir, "tokenize needs one; use a folder with the model's tokenizer")
			if err != nil {
				return err
			}
			s := text
			if messages != "" {
				var think *bool
				if cmd.Flags().Changed("enable-thinking") {
					think = &thinking
				}
				if s, err = renderChat(dir, messages, tools, addGen, continueFinal, think); err != nil {
					return err
				}
			}
			ids, err := tk.Encode(s)
			if err != nil {
				return err
			}
			if ids == nil {
				ids = []int{}
			}
			out := struct {
				Tokens []int   `json:"tokens"`
				Count  int     `json:"count"`
				Text   *string `json:"text,omitempty"`
			}{Tokens: ids, Count: len(ids)}
			if printText {
				out.Text = &s
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			return enc.Encode(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "model folder with tokenizer.json (and tokenizer_config.json for chats)")
	f.StringVar(&text, "text", "", "text to tokenize as is")
	f.StringVar(&messages, "messages", "", "JSON file: an array of OpenAI-style chat messages")
	f.StringVar(&tools, "tools", "", "JSON file: an array of OpenAI tool definitions")
	f.BoolVar(&addGen, "add-generation-prompt", false, "end with the assistant turn's opening, as for generation")
	f.BoolVar(&continueFinal, "continue-final-message", false, "end inside the last message (a prefilled answer to continue), as transformers' continue_final_message")
	f.BoolVar(&thinking, "enable-thinking", true, "Qwen3: let the model think (false adds an empty <think></think>)")
	f.BoolVar(&printText, "print-text", false, "also print the rendered text")
	return cmd
}

func newDetokenizeCmd() *cobra.Command {
	var dir, ids string
	var skipSpecial bool
	cmd := &cobra.Command{
		Use:   "detokenize --model DIR --ids 1,2,3",
		Short: `Turn token ids back into text, printing {"prompt": TEXT} as vLLM's /detokenize`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || ids == "" {
				return errors.New("--model and --ids are required")
			}
			list, err := parseIDs("--ids", ids)
			if err != nil {
				return err
			}
			tk, err := loadTokenizer(dir, "detokenize needs one; use a folder with the model's tokenizer")
			if err != nil {
				return err
			}
			s, err := tk.Decode(list, skipSpecial)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			return enc.Encode(map[string]string{"prompt": s})
		},
	}
	cmd.Flags().StringVar(&dir, "model", "", "model folder with tokenizer.json")
	cmd.Flags().StringVar(&ids, "ids", "", "token ids, comma-separated")
	cmd.Flags().BoolVar(&skipSpecial, "skip-special-tokens", false, "leave out special tokens")
	return cmd
}
