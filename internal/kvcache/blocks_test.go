package kvcache

import "testing"

func TestPrefixChainAndEviction(t *testing.T) {
	m := NewManager(4, 2, true)
	a := []int{1, 2, 3, 4, 5}
	table, ok := m.Grow(nil, len(a))
	if !ok || len(table) != 3 {
		t.Fatalf("grow: %v %v", table, ok)
	}
	m.Commit(table, a, len(a))
	// the same first block but a different second: only one block is shared
	got, n := m.MatchPrefix([]int{1, 2, 9, 9, 5})
	if n != 2 || len(got) != 1 || got[0] != table[0] {
		t.Fatalf("match: %v %d", got, n)
	}
	m.Free(got)
	// the full match stops one token short so the last prompt token is computed
	got, n = m.MatchPrefix([]int{1, 2, 3, 4})
	if n != 2 {
		t.Fatalf("a prompt that is exactly cached must leave a token to compute: %d cached", n)
	}
	m.Free(got)
	m.Free(table)
	if m.FreeBlocks() != 4 {
		t.Fatalf("%d free", m.FreeBlocks())
	}
	// freed blocks keep their contents until reused
	got, n = m.MatchPrefix(a)
	if n != 4 {
		t.Fatalf("cached blocks forgotten after free: %d", n)
	}
	m.Free(got)
	// taking every block evicts the cache
	all, ok := m.Grow(nil, 8)
	if !ok {
		t.Fatal("could not take the whole pool")
	}
	if _, n := m.MatchPrefix(a); n != 0 {
		t.Fatalf("evicted blocks still matched: %d", n)
	}
	if _, ok := m.Grow(nil, 1); ok {
		t.Fatal("grew past the pool")
	}
	m.Free(all)
	if msg := m.Check(nil); msg != "" {
		t.Fatal(msg)
	}
}
