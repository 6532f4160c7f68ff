// Package api serves the OpenAI-compatible HTTP API as vLLM does: completions, chat
// completions (streaming, tools, reasoning), tokenize/detokenize, models, health, version and
// Prometheus metrics with vLLM's names.
package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-ai/strata/internal/chattemplate"
	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/jsontype"
	"github.com/strata-ai/strata/internal/sampling"
	"github.com/strata-ai/strata/internal/serve"
	"github.com/strata-ai/strata/internal/tokenizer"
)

// Version is what /version reports.
var Version = "0.1.0"

// MaxBodyBytes bounds a request body; larger ones get 413.
const MaxBodyBytes = 8 << 20

// Defaults are generation_config.json's sampling defaults (--generation-config auto), used
// where a request does not set the field.
type Defaults struct {
	Temperature       *float64 `json:"temperature"`
	TopP              *float64 `json:"top_p"`
	TopK              *int64   `json:"top_k"`
	MinP              *float64 `json:"min_p"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	MaxNewTokens      *int64   `json:"max_new_tokens"`
}

// Validate holds the defaults to the rules a request's own values meet, so that a bad
// generation_config.json is refused when the server starts, not blamed on every request.
func (d Defaults) Validate() error {
	p := sampling.Params{Temperature: 1, TopP: 1, TopK: -1, RepetitionPenalty: 1}
	if d.Temperature != nil {
		p.Temperature = *d.Temperature
	}
	if d.TopP != nil {
		p.TopP = *d.TopP
	}
	if d.TopK != nil {
		if *d.TopK < -1 || *d.TopK > math.MaxInt32 {
			return fmt.Errorf("top_k %d must be -1 (off), 0 (off) or positive", *d.TopK)
		}
		p.TopK = int(*d.TopK)
	}
	if d.MinP != nil {
		p.MinP = *d.MinP
	}
	if d.RepetitionPenalty != nil {
		p.RepetitionPenalty = *d.RepetitionPenalty
	}
	switch {
	case d.MaxNewTokens != nil && *d.MaxNewTokens < 1:
		return fmt.Errorf("max_new_tokens %d must be at least 1", *d.MaxNewTokens)
	case p.Temperature > 2: // the API's bound on a request's own, which the default fills
		return fmt.Errorf("temperature %v must be between 0 and 2", p.Temperature)
	case !(p.RepetitionPenalty > 0):
		return fmt.Errorf("repetition_penalty %v must be greater than zero (1 is off)", p.RepetitionPenalty)
	}
	return p.Validate()
}

// Config is what the server needs to know about the model and its flags.
type Config struct {
	ModelNames  []string // --served-model-name; the first is reported as the model
	ModelRoot   string   // the model folder, reported as the model's root
	APIKey      string   // --api-key: required as "Authorization: Bearer KEY" on /v1
	MaxModelLen int
	Vocab       int
	Tokenizer   *tokenizer.Tokenizer // nil with --skip-tokenizer-init
	Template    *chattemplate.Template
	EOS         []int
	Defaults    Defaults
	AutoTools   bool   // --enable-auto-tool-choice
	ToolParser  string // --tool-call-parser: "" or "hermes"
	Reasoning   string // --reasoning-parser: "" or "qwen3"
	// Seed, when not 0, makes requests without a seed reproducible across server runs: the
	// n-th such request gets Seed+n (vLLM's --seed).
	Seed int64
	// Health, when set, reports a problem outside the engine (a node that is down).
	Health func() error
	Log    *slog.Logger
}

// Server is the HTTP API over a serve.Runner.
type Server struct {
	seeds   atomic.Int64
	cfg     Config
	run     *serve.Runner
	mux     *http.ServeMux
	reg     *prometheus.Registry
	m       metrics
	created int64
}

// New builds the server; Handler serves it.
func New(cfg Config, run *serve.Runner) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, run: run, mux: http.NewServeMux(), reg: prometheus.NewRegistry(), created: time.Now().Unix()}
	s.m = newMetrics(s.reg, cfg.ModelNames[0], run)
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("GET /version", s.version)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /v1/models", s.auth(s.models))
	s.mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	s.mux.HandleFunc("POST /v1/chat/completions", s.auth(s.chat))
	s.mux.HandleFunc("POST /tokenize", s.tokenize)
	s.mux.HandleFunc("POST /detokenize", s.detokenize)
	// An endpoint asked with the wrong method gets 405 and the method to use (the catch-all
	// below would otherwise answer 404 before the mux could).
	allowed := map[string]string{"/health": "GET", "/version": "GET", "/metrics": "GET", "/v1/models": "GET",
		"/v1/completions": "POST", "/v1/chat/completions": "POST", "/tokenize": "POST", "/detokenize": "POST"}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m), "")
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint", r.Method, r.URL.Path), "")
	})
	return s
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		w = tw
		defer func() {
			// A bug in one request must not take the server down with it.
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.cfg.Log.Error("request panicked", "path", r.URL.Path, "panic", p)
				if tw.wrote {
					panic(http.ErrAbortHandler) // mid-response: cut the connection, as net/http does
				}
				writeError(w, http.StatusInternalServerError, "internal error", "")
			}
		}()
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		s.mux.ServeHTTP(w, r)
	})
}

// trackingWriter remembers whether the response has started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) { t.wrote = true; t.ResponseWriter.WriteHeader(code) }

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush for streaming).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// apiError is an error with the HTTP status it maps to.
type apiError struct {
	status int
	msg    string
	param  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(param, format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, clip(fmt.Sprintf(format, a...), 1000), clip(param, 100)}
}

// clip shortens s to at most n bytes (on a character boundary), so an error about a huge
// input does not echo it.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

var errTypes = map[int]string{
	400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 405: "MethodNotAllowedError",
	413: "RequestEntityTooLargeError", 500: "InternalServerError", 503: "ServiceUnavailableError",
}

// writeError writes OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
func writeError(w http.ResponseWriter, status int, msg, param string) {
	typ := errTypes[status]
	if typ == "" {
		typ = "BadRequestError"
	}
	var p any
	if param != "" {
		p = param
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": p, "code": status}})
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.status, ae.msg, ae.param)
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error(), "")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.APIKey == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.APIKey)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, http.StatusUnauthorized, "invalid or missing API key: send \"Authorization: Bearer KEY\" with the server's --api-key", "")
			return
		}
		h(w, r)
	}
}

// decode reads a JSON body into v, mapping every failure to a 4xx, and logs (without failing)
// fields v does not know, as vLLM does.
func (s *Server) decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), ""}
		}
		return badRequest("", "reading the request body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return badRequest("", "the request body is empty: send a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var fe *jsontype.Error
		switch {
		case errors.As(jsontype.FieldError(err, v), &fe):
			return badRequest(fe.Key, "%s", fe.Error())
		case errors.As(err, &te):
			return badRequest("", "the request body must be a JSON object, not %s", te.Value)
		case errors.As(err, &se):
			return badRequest("", "the request body is not valid JSON: %v (at byte %d)", err, se.Offset)
		default:
			return badRequest("", "invalid request: %v", err)
		}
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) == nil {
		known := jsonFields(reflect.TypeOf(v).Elem())
		var unknown []string
		for k := range raw {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			s.cfg.Log.Warn("request has fields the server does not use; they are ignored", "path", r.URL.Path, "fields", strings.Join(unknown, ","))
		}
	}
	return nil
}

// jsonFields lists the JSON names of t's fields, including embedded structs'.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k := range jsonFields(f.Type) {
				out[k] = true
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// checkModel accepts the served names (and an empty model, as vLLM does).
func (s *Server) checkModel(name string) error {
	if name == "" {
		return nil
	}
	for _, n := range s.cfg.ModelNames {
		if n == name {
			return nil
		}
	}
	return &apiError{http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist. This server serves %s.", name, strings.Join(s.cfg.ModelNames, ", ")), "model"}
}

// clusterErr is a failure that makes new requests pointless (a node is down).
func (s *Server) clusterErr() error {
	if s.cfg.Health != nil {
		return s.cfg.Health()
	}
	return nil
}

// healthErr adds the engine's last step failure, until a step succeeds again.
func (s *Server) healthErr() error {
	if err := s.run.Healthy(); err != nil {
		return err
	}
	if s.cfg.Health != nil {
		return s.cfg.Health()
	}
	return nil
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if err := s.healthErr(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error(), "")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": Version})
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	var data []map[string]any
	for _, n := range s.cfg.ModelNames {
		data = append(data, map[string]any{
			"id": n, "object": "model", "created": s.created, "owned_by": "strata",
			"root": s.cfg.ModelRoot, "parent": nil, "max_model_len": s.cfg.MaxModelLen,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// admitTokenizer decodes a /tokenize or /detokenize request and checks the model and that
// the server has a tokenizer.
func (s *Server) admitTokenizer(r *http.Request, req any, model *string) error {
	if err := s.decode(r, req); err != nil {
		return err
	}
	if err := s.checkModel(*model); err != nil {
		return err
	}
	if s.cfg.Tokenizer == nil {
		return badRequest("", "this server runs with --skip-tokenizer-init: it has no tokenizer")
	}
	return nil
}

func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if err := s.admitTokenizer(r, &req, &req.Model); err != nil {
		writeAPIError(w, err)
		return
	}
	var text string
	switch {
	case req.Prompt != nil && len(req.Messages) == 0:
		text = *req.Prompt
	case req.Prompt == nil && len(req.Messages) > 0:
		addGen := req.AddGenerationPrompt == nil || *req.AddGenerationPrompt
		var err error
		if text, err = s.renderChat(req.Messages, req.Tools, addGen, req.ContinueFinalMessage, req.ChatTemplateKwargs); err != nil {
			writeAPIError(w, err)
			return
		}
	default:
		writeError(w, http.StatusBadRequest, "give exactly one of \"prompt\" or \"messages\"", "prompt")
		return
	}
	ids, err := s.cfg.Tokenizer.Encode(text)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "prompt")
		return
	}
	if ids == nil {
		ids = []int{}
	}
	out := map[string]any{"count": len(ids), "max_model_len": s.cfg.MaxModelLen, "tokens": ids, "token_strs": nil}
	if req.ReturnTokenStrs {
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i], _ = s.cfg.Tokenizer.Decode([]int{id}, false)
		}
		out["token_strs"] = strs
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) {
	var req detokenizeRequest
	if err := s.admitTokenizer(r, &req, &req.Model); err != nil {
		writeAPIError(w, err)
		return
	}
	for _, id := range req.Tokens {
		if id < 0 || id >= s.cfg.Vocab {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("token id %d is outside the vocabulary (0..%d)", id, s.cfg.Vocab-1), "tokens")
			return
		}
	}
	text, err := s.cfg.Tokenizer.Decode(req.Tokens, false)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "tokens")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"prompt": text})
}

// engineRequestError turns an engine validation error into a 400.
func engineRequestError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, serve.ErrClosed) {
		return &apiError{http.StatusServiceUnavailable, err.Error(), ""}
	}
	if errors.Is(err, engine.ErrTooLong) {
		return &apiError{http.StatusBadRequest, err.Error(), "max_tokens"}
	}
	if errors.Is(err, engine.ErrNoPromptLogprobs) {
		return &apiError{http.StatusBadRequest, "prompt logprobs (asked for by prompt_logprobs, or by echo with logprobs) are not available from this server's executor", "prompt_logprobs"}
	}
	return err
}
