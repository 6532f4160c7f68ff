// Package serve runs an engine for many concurrent callers: one goroutine owns the engine and
// steps it while work is pending; callers submit requests and read their tokens from streams.
package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-ai/strata/internal/engine"
)

// Engine is what the runner drives; *engine.Engine is one. None of its methods is called
// from more than one goroutine at a time.
type Engine interface {
	Add(engine.Request) error
	Abort(id string) bool
	Step() ([]engine.Event, error)
	Pending() int
	Stuck() bool
	Stats() engine.Stats
}

// ErrClosed is returned to requests that were still running when the runner stopped.
var ErrClosed = errors.New("serve: the engine has stopped")

// Runner owns an Engine.
type Runner struct {
	eng Engine

	mu     sync.Mutex
	inbox  []op
	subs   map[string]*Stream
	stats  engine.Stats
	failed error // the last engine failure, until a later step succeeds
	closed bool
	wake   chan struct{}
}

type op struct {
	replace Engine
	add     *engine.Request
	abort   string
	s       *Stream
	added   chan error // the engine's verdict on add
}

// NewRunner wraps eng; call Run to start stepping.
func NewRunner(eng Engine) *Runner {
	return &Runner{eng: eng, subs: map[string]*Stream{}, wake: make(chan struct{}, 1), stats: eng.Stats()}
}

// Stream delivers one request's events in order.
type Stream struct {
	ID      string
	mu      sync.Mutex
	events  []engine.Event
	err     error
	done    bool
	notify  chan struct{}
	created time.Time
}

func (s *Stream) push(evs []engine.Event, err error, done bool) {
	s.mu.Lock()
	s.events = append(s.events, evs...)
	if err != nil && s.err == nil {
		s.err = err
	}
	s.done = s.done || done
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next waits for events and returns those not yet read; done is true once the request has
// finished (or failed, with err) and every event has been returned.
func (s *Stream) Next(ctx context.Context) (evs []engine.Event, done bool, err error) {
	for {
		s.mu.Lock()
		evs, s.events = s.events, nil
		done, err = s.done, s.err
		s.mu.Unlock()
		if len(evs) > 0 || done {
			return evs, done, err
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// Submit queues a request and waits until the engine has accepted it (at most one step), so
// a request the engine refuses fails before any response starts; its tokens then arrive on
// the returned stream.
func (r *Runner) Submit(ctx context.Context, req engine.Request) (*Stream, error) {
	s := &Stream{ID: req.ID, notify: make(chan struct{}, 1), created: time.Now()}
	added := make(chan error, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.inbox = append(r.inbox, op{add: &req, s: s, added: added})
	r.poke()
	r.mu.Unlock()
	select {
	case err := <-added:
		if err != nil {
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		r.Abort(req.ID)
		return nil, ctx.Err()
	}
}

// Replace hands the runner a new engine (the cluster re-formed): requests still on the old
// one fail, new ones go to the new one.
func (r *Runner) Replace(eng Engine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inbox = append(r.inbox, op{replace: eng})
	r.poke()
}

func (r *Runner) swap(eng Engine) {
	r.mu.Lock()
	subs := r.subs
	r.subs = map[string]*Stream{}
	r.eng, r.failed = eng, nil
	r.stats = eng.Stats()
	r.mu.Unlock()
	for _, s := range subs {
		s.push(nil, errors.New("serve: the cluster re-formed; the request was lost with the old one"), true)
	}
}

// Abort ends a request and frees its KV blocks (a client went away).
func (r *Runner) Abort(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inbox = append(r.inbox, op{abort: id})
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats is the engine's state after the last step.
func (r *Runner) Stats() engine.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Healthy reports the last engine failure, or nil once a step has succeeded since (the
// server keeps taking requests: a step that fails again reports again).
func (r *Runner) Healthy() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Run steps the engine until ctx ends, then fails whatever is still running.
func (r *Runner) Run(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		r.closed = true
		subs := r.subs
		r.subs = map[string]*Stream{}
		inbox := r.inbox
		r.inbox = nil
		r.mu.Unlock()
		for _, s := range subs {
			s.push(nil, ErrClosed, true)
		}
		for _, o := range inbox {
			if o.added != nil {
				o.added <- ErrClosed
			}
		}
	}()
	for {
		r.mu.Lock()
		inbox := r.inbox
		r.inbox = nil
		r.mu.Unlock()
		for _, o := range inbox {
			if o.replace != nil {
				r.swap(o.replace)
				continue
			}
			if o.add != nil {
				if err := r.eng.Add(*o.add); err != nil {
					o.added <- err
					continue
				}
				r.mu.Lock()
				r.subs[o.add.ID] = o.s
				r.mu.Unlock()
				o.added <- nil
				continue
			}
			r.eng.Abort(o.abort)
			r.mu.Lock()
			s := r.subs[o.abort]
			delete(r.subs, o.abort)
			r.mu.Unlock()
			if s != nil {
				s.push(nil, context.Canceled, true)
			}
		}
		if r.eng.Pending() == 0 {
			r.mu.Lock()
			r.stats = r.eng.Stats()
			r.mu.Unlock()
			select {
			case <-r.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		evs, err := r.eng.Step()
		r.deliver(evs, err)
	}
}

// deliver hands a step's events to their streams; an engine error fails every running
// request (the engine's state for them is unknown), and is reported by Healthy until a later
// step succeeds.
func (r *Runner) deliver(evs []engine.Event, err error) {
	r.mu.Lock()
	r.stats = r.eng.Stats()
	if err != nil {
		r.failed = err
		subs := r.subs
		r.subs = map[string]*Stream{}
		r.mu.Unlock()
		for id, s := range subs {
			r.eng.Abort(id)
			s.push(nil, err, true)
		}
		return
	}
	r.failed = nil
	byID := map[string][]engine.Event{}
	var order []string
	for _, ev := range evs {
		if _, ok := byID[ev.ID]; !ok {
			order = append(order, ev.ID)
		}
		byID[ev.ID] = append(byID[ev.ID], ev)
	}
	type out struct {
		s    *Stream
		evs  []engine.Event
		err  error
		done bool
	}
	var outs []out
	for _, id := range order {
		s := r.subs[id]
		if s == nil {
			continue
		}
		list := byID[id]
		last := list[len(list)-1]
		done := last.Finished
		if done {
			delete(r.subs, id)
		}
		var err error
		if last.Err != nil { // the engine ended the request on a failure: no token comes with it
			list, err = list[:len(list)-1], last.Err
		}
		outs = append(outs, out{s, list, err, done})
	}
	var stuck []*Stream
	if len(evs) == 0 && r.eng.Stuck() {
		for id, s := range r.subs {
			stuck = append(stuck, s)
			delete(r.subs, id)
		}
	}
	r.mu.Unlock()
	for _, o := range outs {
		o.s.push(o.evs, o.err, o.done)
	}
	for _, s := range stuck {
		r.eng.Abort(s.ID)
		s.push(nil, fmt.Errorf("serve: request %s cannot be scheduled: the KV cache cannot hold it", s.ID), true)
	}
}
