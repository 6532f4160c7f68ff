package comm

import (
	"encoding/binary"
	"fmt"
)

// Collective names an operation; the names follow nccl-tests' binaries.
type Collective uint8

// Collectives.
const (
	CollAllReduce Collective = iota + 1
	CollReduceScatter
	CollAllGather
	CollBroadcast
	CollReduce
	CollAllToAll
	CollSendRecv
	CollBarrier
)

// AllCollectives lists the collectives `strata bench comm` can measure.
var AllCollectives = []Collective{CollAllReduce, CollReduceScatter, CollAllGather, CollBroadcast, CollReduce, CollAllToAll, CollSendRecv}

func (c Collective) String() string {
	switch c {
	case CollAllReduce:
		return "all_reduce"
	case CollReduceScatter:
		return "reduce_scatter"
	case CollAllGather:
		return "all_gather"
	case CollBroadcast:
		return "broadcast"
	case CollReduce:
		return "reduce"
	case CollAllToAll:
		return "alltoall"
	case CollSendRecv:
		return "sendrecv"
	case CollBarrier:
		return "barrier"
	}
	return fmt.Sprintf("collective(%d)", uint8(c))
}

// ParseCollective accepts nccl-tests' names (all_reduce, reduce_scatter, ...), with or
// without underscores.
func ParseCollective(s string) (Collective, error) {
	for c := CollAllReduce; c <= CollBarrier; c++ {
		if s == c.String() || s == removeUnderscores(c.String()) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown collective %q (want all_reduce, reduce_scatter, all_gather, broadcast, reduce, alltoall or sendrecv)", s)
}

func removeUnderscores(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// desc is what every rank must agree on for one call. It travels in every frame header so
// a receiver can tell precisely how its peer's call differs from its own.
type desc struct {
	coll  Collective
	dtype DataType
	op    Op
	algo  Algo
	root  int32
	count uint64 // elements per rank as nccl-tests counts them (see Comm methods)
	seq   uint64 // collective sequence number on this communicator; per-pair for send/recv
}

func (d desc) String() string {
	s := fmt.Sprintf("%s(count=%d, %s", d.coll, d.count, d.dtype)
	switch d.coll {
	case CollAllReduce, CollReduceScatter, CollReduce:
		s += ", " + d.op.String()
	}
	switch d.coll {
	case CollBroadcast, CollReduce:
		s += fmt.Sprintf(", root=%d", d.root)
	}
	if d.algo != 0 && d.coll != CollSendRecv {
		s += ", algo=" + d.algo.String()
	}
	return s + fmt.Sprintf(") #%d", d.seq)
}

// diff says in words how two descriptors differ, for mismatch errors.
func (d desc) diff(o desc) string {
	switch {
	case d.seq != o.seq:
		return fmt.Sprintf("call #%d vs call #%d (a rank skipped or added a call)", d.seq, o.seq)
	case d.coll != o.coll:
		return fmt.Sprintf("collective %s vs %s", d.coll, o.coll)
	case d.count != o.count:
		return fmt.Sprintf("count %d vs %d", d.count, o.count)
	case d.dtype != o.dtype:
		return fmt.Sprintf("type %s vs %s", d.dtype, o.dtype)
	case d.op != o.op:
		return fmt.Sprintf("op %s vs %s", d.op, o.op)
	case d.root != o.root:
		return fmt.Sprintf("root %d vs %d", d.root, o.root)
	case d.algo != o.algo:
		return fmt.Sprintf("algorithm %s vs %s (is STRATA_ALGO set differently?)", d.algo, o.algo)
	}
	return "nothing"
}

// Frame kinds on inter-node connections.
const (
	frameData  = 1
	frameAbort = 2
)

const (
	frameMagic  = 0x5354 // "ST"
	headerBytes = 48
)

// header prefixes every frame between nodes. A 48-byte header per frame is noise next to
// the piece sizes the algorithms use, and it lets every receiver verify the call it belongs to.
type header struct {
	kind     uint8
	d        desc
	src, dst int32  // global ranks
	tag      uint32 // stream within the (src, dst) pair
	length   uint32 // payload bytes
}

func (h *header) encode(b []byte) {
	_ = b[headerBytes-1]
	binary.LittleEndian.PutUint16(b[0:], frameMagic)
	b[2] = h.kind
	b[3] = uint8(h.d.coll)
	b[4] = uint8(h.d.dtype)
	b[5] = uint8(h.d.op)
	b[6] = uint8(h.d.algo)
	b[7] = 0
	binary.LittleEndian.PutUint32(b[8:], uint32(h.src))
	binary.LittleEndian.PutUint32(b[12:], uint32(h.dst))
	binary.LittleEndian.PutUint32(b[16:], h.tag)
	binary.LittleEndian.PutUint32(b[20:], uint32(h.d.root))
	binary.LittleEndian.PutUint64(b[24:], h.d.seq)
	binary.LittleEndian.PutUint64(b[32:], h.d.count)
	binary.LittleEndian.PutUint32(b[40:], h.length)
	binary.LittleEndian.PutUint32(b[44:], 0)
}

func (h *header) decode(b []byte) error {
	if m := binary.LittleEndian.Uint16(b[0:]); m != frameMagic {
		return fmt.Errorf("bad frame magic %#04x (stream corrupt or not a strata peer)", m)
	}
	h.kind = b[2]
	h.d.coll = Collective(b[3])
	h.d.dtype = DataType(b[4])
	h.d.op = Op(b[5])
	h.d.algo = Algo(b[6])
	h.src = int32(binary.LittleEndian.Uint32(b[8:]))
	h.dst = int32(binary.LittleEndian.Uint32(b[12:]))
	h.tag = binary.LittleEndian.Uint32(b[16:])
	h.d.root = int32(binary.LittleEndian.Uint32(b[20:]))
	h.d.seq = binary.LittleEndian.Uint64(b[24:])
	h.d.count = binary.LittleEndian.Uint64(b[32:])
	h.length = binary.LittleEndian.Uint32(b[40:])
	if h.kind != frameData && h.kind != frameAbort {
		return fmt.Errorf("bad frame kind %d", h.kind)
	}
	return nil
}
