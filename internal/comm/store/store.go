// Package store is the rendezvous key-value store nodes use to find each other, like
// torch's TCPStore: the master serves it, every node sets its address and waits for the
// others'. The interface lets the cluster runtime put etcd behind it later.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Store is a key-value store whose Get waits for the key to appear.
type Store interface {
	// Set stores value under key, replacing any earlier value.
	Set(ctx context.Context, key string, value []byte) error
	// Get returns the value under key, waiting until some node sets it or ctx ends.
	Get(ctx context.Context, key string) ([]byte, error)
	// Close releases the store's connections.
	Close() error
}

// ErrClosed is returned by a closed store.
var ErrClosed = errors.New("store: closed")

// Mem is the in-memory twin of the TCP store, for nodes that share a process.
type Mem struct {
	mu     sync.Mutex
	kv     map[string][]byte
	wait   map[string]chan struct{}
	closed bool
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{kv: map[string][]byte{}, wait: map[string]chan struct{}{}} }

// Set implements Store.
func (m *Mem) Set(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.kv[key] = append([]byte(nil), value...)
	if ch, ok := m.wait[key]; ok {
		close(ch)
		delete(m.wait, key)
	}
	return nil
}

// Get implements Store.
func (m *Mem) Get(ctx context.Context, key string) ([]byte, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		if v, ok := m.kv[key]; ok {
			m.mu.Unlock()
			return append([]byte(nil), v...), nil
		}
		ch, ok := m.wait[key]
		if !ok {
			ch = make(chan struct{})
			m.wait[key] = ch
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("store: waiting for key %q: %w", key, ctx.Err())
		}
	}
}

// Close implements Store; waiting Gets return ErrClosed.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		for k, ch := range m.wait {
			close(ch)
			delete(m.wait, k)
		}
	}
	return nil
}
