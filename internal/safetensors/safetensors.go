// Package safetensors reads Hugging Face .safetensors files: an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, then the data. Files
// are memory-mapped, so a rank touches only the pages of the tensors it reads. Every header is
// validated before any tensor is handed out; a bad file gets an error naming the file and the
// tensor at fault.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/strata-ai/strata/internal/tensor"
)

// DType is a safetensors element type name.
type DType string

// The element types safetensors defines.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
	F8E4 DType = "F8_E4M3"
	F8E5 DType = "F8_E5M2"
)

// Size is the element width in bytes, 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool, F8E4, F8E5:
		return 1
	}
	return 0
}

// Info describes one tensor: its type, shape and byte range inside the data section.
type Info struct {
	Name  string
	DType DType
	Shape []int
	Begin int64 // offset from the start of the data section
	End   int64
}

// Elements is the number of elements the shape holds.
func (i Info) Elements() int64 {
	n := int64(1)
	for _, d := range i.Shape {
		n *= int64(d)
	}
	return n
}

// ErrFormat marks a file that is not valid safetensors.
var ErrFormat = errors.New("not a valid safetensors file")

// maxHeader bounds the JSON header (the format's own reference implementation uses 100 MB).
const maxHeader = 100 << 20

type rawEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ParseHeader validates a header (the JSON bytes) against a data section of dataLen bytes and
// returns the tensors sorted by name, plus the metadata. It never panics on any input.
func ParseHeader(header []byte, dataLen int64) ([]Info, map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, nil, fmt.Errorf("%w: header is not a JSON object: %v", ErrFormat, err)
	}
	meta := map[string]string{}
	var out []Info
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("%w: __metadata__ must map strings to strings: %v", ErrFormat, err)
			}
			continue
		}
		var e rawEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		if e.DType.Size() == 0 {
			return nil, nil, fmt.Errorf("%w: tensor %q has unknown dtype %q", ErrFormat, name, e.DType)
		}
		if len(e.DataOffsets) != 2 {
			return nil, nil, fmt.Errorf("%w: tensor %q: data_offsets must be [begin, end]", ErrFormat, name)
		}
		info := Info{Name: name, DType: e.DType, Begin: e.DataOffsets[0], End: e.DataOffsets[1]}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 || d > math.MaxInt32 {
				return nil, nil, fmt.Errorf("%w: tensor %q has dimension %d", ErrFormat, name, d)
			}
			if d != 0 && elems > math.MaxInt64/8/d {
				return nil, nil, fmt.Errorf("%w: tensor %q is impossibly large", ErrFormat, name)
			}
			elems *= d
			info.Shape = append(info.Shape, int(d))
		}
		if info.Begin < 0 || info.End < info.Begin || info.End > dataLen {
			return nil, nil, fmt.Errorf("%w: tensor %q: bytes [%d, %d) fall outside the %d-byte data section (file truncated?)",
				ErrFormat, name, info.Begin, info.End, dataLen)
		}
		if want := elems * int64(e.DType.Size()); info.End-info.Begin != want {
			return nil, nil, fmt.Errorf("%w: tensor %q: shape %v of %s needs %d bytes but data_offsets hold %d",
				ErrFormat, name, info.Shape, e.DType, want, info.End-info.Begin)
		}
		out = append(out, info)
	}
	var byStart []Info // empty tensors occupy nothing and cannot overlap
	for _, i := range out {
		if i.End > i.Begin {
			byStart = append(byStart, i)
		}
	}
	sort.Slice(byStart, func(a, b int) bool { return byStart[a].Begin < byStart[b].Begin })
	for i := 1; i < len(byStart); i++ {
		if byStart[i].Begin < byStart[i-1].End {
			return nil, nil, fmt.Errorf("%w: tensors %q and %q overlap", ErrFormat, byStart[i-1].Name, byStart[i].Name)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, meta, nil
}

// File is an open, memory-mapped safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	infos    map[string]Info
	names    []string
	mapped   []byte // the whole file
	data     []byte // the data section
	isMmap   bool   // mapped came from mmap (FromBytes images are not unmapped)
}

// fileKind names what a path that is not a regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Open maps a file and validates its header.
func Open(path string) (*File, error) {
	// Stat before Open: opening a named pipe blocks until a writer comes
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: a %s, not a file", path, ErrFormat, fileKind(st.Mode()))
	}
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: %w: %d bytes is too short for a header", path, ErrFormat, size)
	}
	m, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	f, err := fromBytes(path, m)
	if err != nil {
		_ = unix.Munmap(m)
		return nil, err
	}
	f.isMmap = true
	return f, nil
}

// FromBytes reads a safetensors image held in memory (tests, fuzzing, small files).
func FromBytes(name string, b []byte) (*File, error) { return fromBytes(name, b) }

func fromBytes(path string, b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: %w: %d bytes is too short for a header", path, ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%s: %w: header claims %d bytes but the file has %d after the length (truncated or not safetensors)", path, ErrFormat, n, len(b)-8)
	}
	infos, meta, err := ParseHeader(b[8:8+n], int64(len(b))-8-int64(n))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &File{Path: path, Metadata: meta, infos: map[string]Info{}, mapped: b, data: b[8+n:]}
	for _, i := range infos {
		f.infos[i.Name] = i
		f.names = append(f.names, i.Name)
	}
	return f, nil
}

// Names lists the tensors in name order.
func (f *File) Names() []string { return f.names }

// Info describes a tensor, or reports false.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.infos[name]
	return i, ok
}

// Bytes returns a tensor's raw little-endian bytes, aliasing the mapping (read only).
func (f *File) Bytes(name string) (Info, []byte, error) {
	i, ok := f.infos[name]
	if !ok {
		return Info{}, nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	return i, f.data[i.Begin:i.End], nil
}

// Float32s returns a tensor converted to float32 (F32, F16 and BF16 only). It copies; use
// Bytes for weights that should stay in their own type.
func (f *File) Float32s(name string) (Info, []float32, error) {
	i, b, err := f.Bytes(name)
	if err != nil {
		return i, nil, err
	}
	out := make([]float32, i.Elements())
	switch i.DType {
	case F32:
		for k := range out {
			out[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
		}
	case BF16:
		for k := range out {
			out[k] = tensor.BF16ToF32(binary.LittleEndian.Uint16(b[2*k:]))
		}
	case F16:
		for k := range out {
			out[k] = tensor.F16ToF32(binary.LittleEndian.Uint16(b[2*k:]))
		}
	default:
		return i, nil, fmt.Errorf("%s: tensor %q is %s, not a float type", f.Path, name, i.DType)
	}
	return i, out, nil
}

// Close unmaps the file; slices from Bytes must not be used afterwards.
func (f *File) Close() error {
	if f.mapped == nil {
		return nil
	}
	m := f.mapped
	f.mapped, f.data = nil, nil
	if f.isMmap {
		return unix.Munmap(m)
	}
	return nil
}
