package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/strata-ai/strata/internal/jsontype"
)

// Set is a model's weights, in one file or sharded across several with an index, as Hugging
// Face publishes them (model.safetensors, or model-00001-of-00002.safetensors and so on with
// model.safetensors.index.json).
type Set struct {
	Dir   string
	files []*File
	where map[string]*File
}

// OpenDir opens the weights in a model folder.
func OpenDir(dir string) (*Set, error) {
	s := &Set{Dir: dir, where: map[string]*File{}}
	index := filepath.Join(dir, "model.safetensors.index.json")
	b, err := os.ReadFile(index)
	switch {
	case err == nil:
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			if fe := jsontype.FieldError(err, &idx); fe != nil {
				err = fe
			}
			return nil, fmt.Errorf("%s: not a valid index: %w", index, err)
		}
		if len(idx.WeightMap) == 0 {
			return nil, fmt.Errorf("%s: weight_map is empty", index)
		}
		shards := map[string]*File{}
		for name, file := range idx.WeightMap {
			if filepath.Base(file) != file {
				s.Close()
				return nil, fmt.Errorf("%s: tensor %q maps to %q, which is not a file in the folder", index, name, file)
			}
			f := shards[file]
			if f == nil {
				if f, err = Open(filepath.Join(dir, file)); err != nil {
					s.Close()
					return nil, fmt.Errorf("%s names shard %s: %w", index, file, err)
				}
				shards[file] = f
				s.files = append(s.files, f)
			}
			if _, ok := f.Info(name); !ok {
				s.Close()
				return nil, fmt.Errorf("%s: tensor %q should be in %s but is not", index, name, file)
			}
			s.where[name] = f
		}
		return s, nil
	case errors.Is(err, os.ErrNotExist):
		f, err := Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json (is this a Hugging Face model folder?)", dir)
			}
			return nil, err
		}
		s.files = []*File{f}
		for _, n := range f.Names() {
			s.where[n] = f
		}
		return s, nil
	default:
		return nil, err
	}
}

// Names lists every tensor in name order.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.where))
	for n := range s.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Info describes a tensor, or reports false.
func (s *Set) Info(name string) (Info, bool) {
	f := s.where[name]
	if f == nil {
		return Info{}, false
	}
	return f.Info(name)
}

// Bytes returns a tensor's raw bytes from whichever shard holds it.
func (s *Set) Bytes(name string) (Info, []byte, error) {
	f := s.where[name]
	if f == nil {
		return Info{}, nil, fmt.Errorf("%s: no tensor %q in the model's weights", s.Dir, name)
	}
	return f.Bytes(name)
}

// Float32s returns a tensor as float32.
func (s *Set) Float32s(name string) (Info, []float32, error) {
	f := s.where[name]
	if f == nil {
		return Info{}, nil, fmt.Errorf("%s: no tensor %q in the model's weights", s.Dir, name)
	}
	return f.Float32s(name)
}

// Close unmaps every shard.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// NewSet gathers already open files (for example images built in memory) into a Set.
func NewSet(dir string, files ...*File) (*Set, error) {
	s := &Set{Dir: dir, where: map[string]*File{}}
	for _, f := range files {
		for _, n := range f.Names() {
			if _, dup := s.where[n]; dup {
				return nil, fmt.Errorf("%s: tensor %q appears in two files", dir, n)
			}
			s.where[n] = f
		}
		s.files = append(s.files, f)
	}
	return s, nil
}
