package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const dense = "../../testdata/models/qwen3-dense-tiny"

func TestOpenRealModel(t *testing.T) {
	s, err := OpenDir(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names := s.Names()
	if len(names) != 4*11+2 {
		t.Fatalf("%d tensors, want 46 (4 layers of 11, embeddings, final norm)", len(names))
	}
	info, ok := s.Info("model.embed_tokens.weight")
	if !ok || info.DType != BF16 || len(info.Shape) != 2 || info.Shape[0] != 1024 || info.Shape[1] != 64 {
		t.Fatalf("embeddings: %+v", info)
	}
	_, f, err := s.Float32s("model.norm.weight")
	if err != nil || len(f) != 64 {
		t.Fatalf("final norm: %v, %d values", err, len(f))
	}
	if _, _, err := s.Bytes("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing tensor: %v", err)
	}
}

func TestRoundTripAndShards(t *testing.T) {
	dir := t.TempDir()
	a := Tensor{Name: "a", DType: F32, Shape: []int{2, 3}, Data: make([]byte, 24)}
	for i := range 6 {
		binary.LittleEndian.PutUint32(a.Data[4*i:], uint32(0x3f800000)) // 1.0
	}
	b := Tensor{Name: "b", DType: BF16, Shape: []int{4}, Data: []byte{0x80, 0x3f, 0, 0x40, 0, 0, 0x80, 0xbf}}
	if err := WriteFile(filepath.Join(dir, "model-00001-of-00002.safetensors"), []Tensor{a}, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{b}, nil); err != nil {
		t.Fatal(err)
	}
	idx, _ := json.Marshal(map[string]any{"weight_map": map[string]string{"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, fa, err := s.Float32s("a")
	if err != nil || len(fa) != 6 || fa[5] != 1 {
		t.Fatalf("a: %v %v", fa, err)
	}
	_, fb, err := s.Float32s("b")
	if err != nil || fb[0] != 1 || fb[1] != 2 || fb[2] != 0 || fb[3] != -1 {
		t.Fatalf("b: %v %v", fb, err)
	}
	// an index naming a tensor its shard lacks
	idx, _ = json.Marshal(map[string]any{"weight_map": map[string]string{"c": "model-00001-of-00002.safetensors"}})
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644)
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("index naming a missing tensor: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	// a shard name of the wrong JSON type, and a shard that is a directory
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(`{"weight_map": {"a": 1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "weight_map: a value is a JSON number, want a string") {
		t.Fatalf("index with a number for a shard: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "model-00003-of-00003.safetensors"), 0o755); err != nil {
		t.Fatal(err)
	}
	idx, _ = json.Marshal(map[string]any{"weight_map": map[string]string{"a": "model-00003-of-00003.safetensors"}})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "a directory, not a file") {
		t.Fatalf("index naming a directory: %v", err)
	}
	// a named pipe: opening one would wait for a writer forever
	fifo := filepath.Join(dir, "model-00004-of-00004.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fifo); err == nil || !strings.Contains(err.Error(), "a named pipe, not a file") {
		t.Fatalf("a named pipe: %v", err)
	}
}

// TestBadFiles: truncated, corrupt and inconsistent files fail with an error naming the file
// and what is wrong, never a panic.
func TestBadFiles(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(dense, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(good)
	header := func(mut func(h map[string]any)) []byte {
		var h map[string]any
		json.Unmarshal(good[8:8+n], &h)
		mut(h)
		hb, _ := json.Marshal(h)
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(hb)))
		return append(append(out, hb...), good[8+n:]...)
	}
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"empty":          {nil, "too short"},
		"truncated data": {good[:len(good)-100], "outside"},
		"truncated head": {good[:100], "header claims"},
		"garbage header": {append(binary.LittleEndian.AppendUint64(nil, 5), []byte("{{{{{")...), "JSON"},
		"bad dtype": {header(func(h map[string]any) {
			h["model.norm.weight"].(map[string]any)["dtype"] = "Q4"
		}), `"model.norm.weight" has unknown dtype`},
		"bad shape": {header(func(h map[string]any) {
			h["model.norm.weight"].(map[string]any)["shape"] = []int{65}
		}), `"model.norm.weight": shape [65]`},
		"overlap": {header(func(h map[string]any) {
			h["model.norm.weight"].(map[string]any)["data_offsets"] = []int{0, 128}
		}), "overlap"},
	}
	for name, c := range cases {
		_, err := FromBytes("x.safetensors", c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.safetensors") {
			t.Errorf("%s: want an error containing %q and the file name, got %v", name, c.want, err)
		}
		if err != nil && name != "empty" && !errors.Is(err, ErrFormat) {
			t.Errorf("%s: want ErrFormat, got %v", name, err)
		}
	}
	if _, err := OpenDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no model.safetensors") {
		t.Errorf("empty folder: %v", err)
	}
}

func FuzzFromBytes(f *testing.F) {
	good, err := os.ReadFile(filepath.Join(dense, "model.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:min(len(good), 6000)])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := FromBytes("fuzz", b)
		if err != nil {
			return
		}
		for _, name := range file.Names() {
			info, data, err := file.Bytes(name)
			if err != nil || int64(len(data)) != info.Elements()*int64(info.DType.Size()) {
				t.Fatalf("tensor %q: %d bytes for %+v (%v)", name, len(data), info, err)
			}
		}
	})
}

// TestZeroLengthTensors: empty tensors may share an offset with real ones (torch writes them
// so); they occupy nothing and must not be taken for an overlap.
func TestZeroLengthTensors(t *testing.T) {
	b, err := Encode([]Tensor{
		{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 8)},
		{Name: "b", DType: F32, Shape: []int{0}, Data: nil},
		{Name: "c", DType: F32, Shape: []int{1}, Data: make([]byte, 4)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 { // map order varies: the check must not depend on it
		if _, err := FromBytes("z", b); err != nil {
			t.Fatal(err)
		}
	}
}
