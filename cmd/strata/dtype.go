package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-ai/strata/internal/kernels"
)

const dtypeUsage = "activation precision of batched matmuls over bf16 weights: auto or float32 " +
	"(within 1e-5 of float32, the default), or bfloat16 (activations rounded as vLLM's CPU backend " +
	"does; about twice the batched speed, logits differ by ~1e-2)"

// addDTypeFlag registers vLLM's --dtype on fs.
func addDTypeFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "dtype", "auto", dtypeUsage)
}

// parseDType maps --dtype to a kernels.Precision.
func parseDType(s string) (kernels.Precision, error) {
	switch s {
	case "auto", "float32", "float":
		return kernels.Float32, nil
	case "bfloat16":
		return kernels.BFloat16, nil
	case "half", "float16":
		return 0, fmt.Errorf("--dtype %s: float16 activations are not supported; use auto, float32 or bfloat16", s)
	}
	return 0, fmt.Errorf("--dtype %q: want auto, float32 or bfloat16", s)
}

const kvDTypeUsage = "KV-cache element type: auto (bfloat16 with --dtype bfloat16, else float32), " +
	"float32, or bfloat16 (half the memory per token and half the bytes decode attention reads; " +
	"logits differ by ~1e-2)"

// addKVDTypeFlag registers vLLM's --kv-cache-dtype on fs.
func addKVDTypeFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "kv-cache-dtype", "auto", kvDTypeUsage)
}

// parseKVDType maps --kv-cache-dtype to the cache's element type; auto follows the activations,
// as vLLM's auto follows the model's dtype.
func parseKVDType(s string, act kernels.Precision) (kernels.Precision, error) {
	switch s {
	case "auto":
		return act, nil
	case "float32", "float":
		return kernels.Float32, nil
	case "bfloat16":
		return kernels.BFloat16, nil
	}
	if strings.HasPrefix(s, "fp8") {
		return 0, fmt.Errorf("--kv-cache-dtype %s: fp8 KV caches are not supported; use auto, float32 or bfloat16", s)
	}
	return 0, fmt.Errorf("--kv-cache-dtype %q: want auto, float32 or bfloat16", s)
}
