package comm

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Algo selects how a collective moves data.
type Algo uint8

// Algorithms. AlgoAuto picks per call from the cost model measured at start-up.
const (
	AlgoAuto Algo = iota
	AlgoRing      // flat ring over every rank, several channels
	AlgoTree      // latency-bound: recursive doubling / binomial tree between nodes
	AlgoHier      // the patent: intra-node reduce, two-way node ring, intra-node broadcast, pipelined
)

// AllAlgos lists the algorithms a user can force.
var AllAlgos = []Algo{AlgoRing, AlgoTree, AlgoHier}

func (a Algo) String() string {
	switch a {
	case AlgoAuto:
		return "auto"
	case AlgoRing:
		return "ring"
	case AlgoTree:
		return "tree"
	case AlgoHier:
		return "hier"
	}
	return fmt.Sprintf("algo(%d)", uint8(a))
}

// ParseAlgo accepts ring, tree, hier and auto.
func ParseAlgo(s string) (Algo, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return AlgoAuto, nil
	case "ring":
		return AlgoRing, nil
	case "tree":
		return AlgoTree, nil
	case "hier", "hierarchical":
		return AlgoHier, nil
	}
	return 0, fmt.Errorf("unknown algorithm %q (want ring, tree, hier or auto)", s)
}

// Config tunes a communicator. Start from DefaultConfig (or ConfigFromEnv) and override.
type Config struct {
	// JobID names the job; peers from another job are refused at the handshake.
	JobID string
	// Token is a shared secret every connection must present (STRATA_TOKEN).
	Token string
	// Timeout bounds every blocking call that has no earlier context deadline (STRATA_TIMEOUT).
	Timeout time.Duration
	// JoinTimeout bounds how long a node waits at start for the others to come up: to reach
	// the master, and for every node to register with it (STRATA_JOIN_TIMEOUT); a serving job
	// also gives it to the waits for other nodes' model loads. People start nodes by hand,
	// minutes apart, so it is far longer than Timeout, as torch.distributed's rendezvous is;
	// it is never shorter than Timeout.
	JoinTimeout time.Duration
	// Channels is the number of TCP connections per pair of nodes (STRATA_NCHANNELS); the
	// flat ring runs one ring per channel.
	Channels int
	// Algo forces an algorithm for every collective; AlgoAuto lets the cost model choose
	// per call (STRATA_ALGO).
	Algo Algo
	// PieceBytes is the pipelining grain: messages are cut into pieces of at most this many
	// bytes so reduction overlaps transfer.
	PieceBytes int
	// SocketIfname chooses the interfaces for inter-node traffic, as NCCL_SOCKET_IFNAME:
	// a comma list of prefixes, "=name" for an exact name, "^prefix" to exclude
	// (STRATA_SOCKET_IFNAME). Empty: the interface that routes to the master, else the first
	// non-loopback interface that is up.
	SocketIfname string
	// RingIfnames wires the patent's node rings to their own NICs: "LEFT,RIGHT" names the
	// interface of a node's first rank (it faces node i-1) and of its last rank (it faces
	// node i+1). Node i's last rank then connects from RIGHT to node i+1's LEFT, and the
	// two node rings of hier each run on their own links (STRATA_RING_IFNAMES). Empty: the
	// rings share the ordinary connections.
	RingIfnames string
	// SkipCalibration leaves the cost model on its built-in link figures instead of
	// measuring the links at start-up (tests that do not care about speed).
	SkipCalibration bool
	// SpinWait is how long a rank waiting for a small message (or a local peer, in a small
	// collective) polls before it sleeps, yielding the processor between polls. Waking a
	// sleeping thread costs tens of microseconds on virtual machines, more than a 1 KiB
	// allreduce itself. 0 never polls (STRATA_SPIN_US, in microseconds).
	SpinWait time.Duration
	// Logger receives start-up decisions and refused connections. Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 30 s timeout, 10 min to join, 2 channels, auto
// algorithm, 256 KiB pieces.
func DefaultConfig() Config {
	return Config{
		JobID:       "strata",
		Timeout:     30 * time.Second,
		JoinTimeout: 10 * time.Minute,
		Channels:    2,
		Algo:        AlgoAuto,
		PieceBytes:  256 << 10,
		SpinWait:    50 * time.Microsecond,
	}
}

// ConfigFromEnv returns DefaultConfig overridden by STRATA_* environment variables.
func ConfigFromEnv() (Config, error) {
	c := DefaultConfig()
	if v := os.Getenv("STRATA_TOKEN"); v != "" {
		c.Token = v
	}
	if v := os.Getenv("STRATA_JOB_ID"); v != "" {
		c.JobID = v
	}
	if v := os.Getenv("STRATA_TIMEOUT"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return c, fmt.Errorf("STRATA_TIMEOUT=%q: %w", v, err)
		}
		c.Timeout = d
	}
	if v := os.Getenv("STRATA_JOIN_TIMEOUT"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return c, fmt.Errorf("STRATA_JOIN_TIMEOUT=%q: %w", v, err)
		}
		c.JoinTimeout = d
	}
	if v := os.Getenv("STRATA_NCHANNELS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return c, fmt.Errorf("STRATA_NCHANNELS=%q: want an integer from 1 to 64", v)
		}
		c.Channels = n
	}
	if v := os.Getenv("STRATA_ALGO"); v != "" {
		a, err := ParseAlgo(v)
		if err != nil {
			return c, fmt.Errorf("STRATA_ALGO: %w", err)
		}
		c.Algo = a
	}
	if v := os.Getenv("STRATA_SPIN_US"); v != "" {
		us, err := strconv.Atoi(v)
		if err != nil || us < 0 || us > 1000000 {
			return c, fmt.Errorf("STRATA_SPIN_US=%q: want microseconds from 0 to 1000000", v)
		}
		c.SpinWait = time.Duration(us) * time.Microsecond
	}
	if v := os.Getenv("STRATA_SOCKET_IFNAME"); v != "" {
		c.SocketIfname = v
	}
	if v := os.Getenv("STRATA_RING_IFNAMES"); v != "" {
		c.RingIfnames = v
	}
	return c, nil
}

// parseDuration accepts Go durations ("30s", "1m") and bare seconds ("30").
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("want a positive duration")
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 30s or 2m")
	}
	if d <= 0 {
		return 0, fmt.Errorf("want a positive duration")
	}
	return d, nil
}

func (c *Config) normalize() error {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	c.JoinTimeout = max(c.JoinTimeout, c.Timeout)
	if c.Channels <= 0 {
		c.Channels = 1
	}
	if c.Channels > 64 {
		return fmt.Errorf("comm: %d channels is too many (at most 64)", c.Channels)
	}
	if c.PieceBytes <= 0 {
		c.PieceBytes = 256 << 10
	}
	c.PieceBytes = min(max(c.PieceBytes, 4<<10), 64<<20) &^ 63
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.JobID == "" {
		c.JobID = "strata"
	}
	return nil
}
