// Package kvcache manages the paged KV cache's blocks, as vLLM does: a fixed pool of blocks of
// blockSize token slots, block tables per sequence, and prefix caching (a full block is known
// by the hash of its tokens and of every token before it, so sequences with a common prefix
// share its blocks). It is a pure state machine: no I/O and no tensors; the engine keeps the
// keys and values in the slots these block ids name.
package kvcache

import (
	"crypto/sha256"
	"encoding/binary"
)

// BlockID names a block in the pool.
type BlockID int32

type block struct {
	ref        int    // sequences using the block
	hash       uint64 // valid when hashed: the block is full and registered for reuse
	parent     uint64 // the hash of the block before it (0 for a sequence's first block)
	hashed     bool
	tokens     []int // the block's tokens when hashed (with parent, guards against collisions)
	prev, next BlockID
	inFree     bool
}

// Manager owns the block pool.
type Manager struct {
	blockSize int
	prefix    bool
	blocks    []block
	// free blocks in eviction order (least recently freed first); cached ones keep their hash
	// until they are taken for new data
	head, tail BlockID
	nfree      int
	cached     map[uint64]BlockID
	// counters for metrics: lookups and lookups that found a cached prefix, and the tokens
	// looked up and found (vLLM's prefix_cache_queries and prefix_cache_hits count tokens)
	Queries, Hits          int64
	QueryTokens, HitTokens int64
}

const none BlockID = -1

// NewManager makes a pool of n blocks of blockSize tokens.
func NewManager(n, blockSize int, prefixCaching bool) *Manager {
	m := &Manager{blockSize: blockSize, prefix: prefixCaching, blocks: make([]block, n), head: none, tail: none, cached: map[uint64]BlockID{}}
	for i := range n {
		m.pushFree(BlockID(i))
	}
	return m
}

// BlockSize is the number of token slots per block.
func (m *Manager) BlockSize() int { return m.blockSize }

// NumBlocks is the pool size.
func (m *Manager) NumBlocks() int { return len(m.blocks) }

// FreeBlocks counts blocks no sequence holds (cached or not).
func (m *Manager) FreeBlocks() int { return m.nfree }

// Usage is the fraction of blocks held by sequences.
func (m *Manager) Usage() float64 {
	if len(m.blocks) == 0 {
		return 0
	}
	return 1 - float64(m.nfree)/float64(len(m.blocks))
}

// BlocksFor is how many blocks n tokens need.
func (m *Manager) BlocksFor(n int) int { return (n + m.blockSize - 1) / m.blockSize }

func (m *Manager) pushFree(id BlockID) {
	b := &m.blocks[id]
	b.inFree, b.prev, b.next = true, m.tail, none
	if m.tail != none {
		m.blocks[m.tail].next = id
	} else {
		m.head = id
	}
	m.tail = id
	m.nfree++
}

func (m *Manager) unlinkFree(id BlockID) {
	b := &m.blocks[id]
	if b.prev != none {
		m.blocks[b.prev].next = b.next
	} else {
		m.head = b.next
	}
	if b.next != none {
		m.blocks[b.next].prev = b.prev
	} else {
		m.tail = b.prev
	}
	b.inFree, b.prev, b.next = false, none, none
	m.nfree--
}

// take pops the least recently freed block, forgetting any cached contents.
func (m *Manager) take() BlockID {
	id := m.head
	m.unlinkFree(id)
	b := &m.blocks[id]
	if b.hashed {
		if m.cached[b.hash] == id {
			delete(m.cached, b.hash)
		}
		b.hashed, b.tokens = false, nil
	}
	b.ref = 1
	return id
}

// hashBlock chains a block's tokens onto its parent's hash with SHA-256 (truncated): a hash
// an attacker can collide on purpose would let a crafted prompt read another request's cache,
// as vLLM learned (CVE-2025-25183). Hits are also checked against the stored tokens and parent.
func hashBlock(parent uint64, tokens []int) uint64 {
	h := sha256.New()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], parent)
	h.Write(buf[:])
	for _, t := range tokens {
		binary.LittleEndian.PutUint64(buf[:], uint64(t))
		h.Write(buf[:])
	}
	var sum [sha256.Size]byte
	return binary.LittleEndian.Uint64(h.Sum(sum[:0]))
}

func sameTokens(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// MatchPrefix finds the longest run of cached full blocks that starts tokens, takes a
// reference on each and returns them with the number of tokens they hold. It always leaves at
// least one token to compute, since the model must produce logits for the last prompt token.
func (m *Manager) MatchPrefix(tokens []int) ([]BlockID, int) {
	if !m.prefix {
		return nil, 0
	}
	var out []BlockID
	var parent uint64
	bs := m.blockSize
	for end := bs; end < len(tokens); end += bs { // strictly less: keep one token to compute
		chunk := tokens[end-bs : end]
		h := hashBlock(parent, chunk)
		id, ok := m.cached[h]
		if !ok || m.blocks[id].parent != parent || !sameTokens(m.blocks[id].tokens, chunk) {
			break
		}
		b := &m.blocks[id]
		if b.inFree {
			m.unlinkFree(id)
		}
		b.ref++
		out = append(out, id)
		parent = h
	}
	return out, len(out) * bs
}

// RecordPrefix counts one admitted request's prefix lookup for metrics: its prompt tokens and
// the tokens the cache already held. The scheduler calls it once per admission (a lookup
// whose request had to wait is repeated, and must not count twice).
func (m *Manager) RecordPrefix(queried, hit int) {
	if !m.prefix {
		return
	}
	m.Queries++
	m.QueryTokens += int64(queried)
	if hit > 0 {
		m.Hits++
	}
	m.HitTokens += int64(hit)
}

// Grow extends a block table to hold n tokens. It changes nothing and reports false when the
// pool cannot supply the blocks.
func (m *Manager) Grow(table []BlockID, n int) ([]BlockID, bool) {
	need := m.BlocksFor(n) - len(table)
	if need <= 0 {
		return table, true
	}
	if need > m.nfree {
		return table, false
	}
	for range need {
		table = append(table, m.take())
	}
	return table, true
}

// Commit registers the full blocks among the first computed tokens so later sequences can
// share them. tokens holds at least computed tokens of the sequence.
func (m *Manager) Commit(table []BlockID, tokens []int, computed int) {
	if !m.prefix {
		return
	}
	bs := m.blockSize
	var parent uint64
	for i := 0; (i+1)*bs <= computed && i < len(table); i++ {
		chunk := tokens[i*bs : (i+1)*bs]
		b := &m.blocks[table[i]]
		if b.hashed {
			parent = b.hash
			continue
		}
		h := hashBlock(parent, chunk)
		b.hash, b.parent, b.hashed, b.tokens = h, parent, true, append([]int(nil), chunk...)
		if _, exists := m.cached[h]; !exists {
			m.cached[h] = table[i]
		}
		parent = h
	}
}

// Free releases a sequence's blocks. Blocks whose last user leaves go to the free list,
// keeping their cached contents until they are reused; the table's last blocks are freed
// first so a sequence's prefix outlives its tail in the cache.
func (m *Manager) Free(table []BlockID) {
	for i := len(table) - 1; i >= 0; i-- {
		b := &m.blocks[table[i]]
		b.ref--
		if b.ref == 0 {
			m.pushFree(table[i])
		}
	}
}

// Check verifies the pool's bookkeeping against the tables that should hold references; it
// returns a description of the first inconsistency, or "".
func (m *Manager) Check(tables [][]BlockID) string {
	refs := make([]int, len(m.blocks))
	for _, t := range tables {
		for _, id := range t {
			refs[id]++
		}
	}
	free := 0
	for id := m.head; id != none; id = m.blocks[id].next {
		free++
		if free > len(m.blocks) {
			return "free list loops"
		}
	}
	if free != m.nfree {
		return "free count disagrees with the free list"
	}
	for i, b := range m.blocks {
		if b.ref != refs[i] {
			return "block reference count disagrees with the tables"
		}
		if (b.ref == 0) != b.inFree {
			return "a free block is held or a held block is free"
		}
	}
	return ""
}

// Shared says whether writing block id would change KV that someone else reads: another table
// holds it too, or the prefix cache keeps it for future requests. A step may only write
// blocks that are not shared.
func (m *Manager) Shared(id BlockID) bool {
	b := &m.blocks[id]
	return b.ref != 1 || b.hashed
}
