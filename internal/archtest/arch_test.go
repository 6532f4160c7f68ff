// Package archtest holds the rules about which strata packages may import which; it fails
// when a package starts depending on what it must not.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/strata-ai/strata/"

// allowed lists, for each package pattern, the only module packages it may depend on
// (directly or not). Anything else under the module is a violation.
var allowed = map[string][]string{
	// comm moves bytes; it must never learn about models, engines or the cluster runtime
	"internal/comm/...": {"internal/comm", "internal/tensor"},
	// element types depend on nothing of ours
	"internal/tensor": {},
	// kernels are math: element types only
	"internal/kernels": {"internal/tensor"},
	// huge-page advice is a system call on a buffer
	"internal/hugepage": {},
	// naming a mistyped JSON key is reflection over encoding/json's errors
	"internal/jsontype": {},
	// the scheduler and block manager are state machines over the model, never the network
	"internal/kvcache":  {},
	"internal/sampling": {"internal/kernels", "internal/tensor"},
	// the JSON-output automaton is a state machine over bytes
	"internal/jsonmode": {},
	// so is the JSON-schema one, which follows an any-object value with jsonmode
	"internal/jsonschema": {"internal/jsonmode", "internal/regexmode"},
	"internal/regexmode":  {"internal/jsonmode"},
	// the model takes its tensor-parallel collectives through an interface it defines
	"internal/model/qwen3": {"internal/kernels", "internal/tensor", "internal/safetensors", "internal/atomicfile", "internal/hugepage", "internal/jsontype"},
	// the engine drives an Executor; whether that is one model or a cluster is not its concern
	"internal/engine": {"internal/kvcache", "internal/sampling", "internal/jsonmode", "internal/jsonschema", "internal/regexmode", "internal/model/qwen3", "internal/kernels", "internal/tensor", "internal/safetensors", "internal/atomicfile", "internal/hugepage", "internal/jsontype"},
	// the HTTP layer talks to a runner, never to the links or the pipeline
	"internal/api/...": {"internal/serve", "internal/engine", "internal/tokenizer", "internal/chattemplate", "internal/demo",
		"internal/kvcache", "internal/sampling", "internal/jsonmode", "internal/jsonschema", "internal/regexmode", "internal/model/qwen3", "internal/kernels", "internal/tensor", "internal/safetensors", "internal/atomicfile", "internal/hugepage", "internal/jsontype"},
}

func TestDependencyRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to list dependencies")
	}
	for pattern, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+pattern).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pattern, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, mine := strings.CutPrefix(dep, module)
			if !mine || strings.HasPrefix(pattern, rel) || strings.HasPrefix(rel, strings.TrimSuffix(pattern, "/...")) {
				continue
			}
			fine := false
			for _, a := range ok {
				if rel == a || strings.HasPrefix(rel, a+"/") {
					fine = true
				}
			}
			if !fine {
				t.Errorf("%s depends on %s, which it must not", pattern, rel)
			}
		}
	}
}
