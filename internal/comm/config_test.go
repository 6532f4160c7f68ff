package comm

import (
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		{env: nil, check: func(c Config) bool {
			return c.Timeout == 30*time.Second && c.JoinTimeout == 10*time.Minute && c.Channels == 2
		}},
		{env: map[string]string{"STRATA_TIMEOUT": "5"}, check: func(c Config) bool { return c.Timeout == 5*time.Second && c.JoinTimeout == 10*time.Minute }},
		{env: map[string]string{"STRATA_JOIN_TIMEOUT": "1h"}, check: func(c Config) bool { return c.JoinTimeout == time.Hour && c.Timeout == 30*time.Second }},
		{env: map[string]string{"STRATA_JOIN_TIMEOUT": "90"}, check: func(c Config) bool { return c.JoinTimeout == 90*time.Second }},
		{env: map[string]string{"STRATA_JOIN_TIMEOUT": "soon"}, wantErr: `STRATA_JOIN_TIMEOUT="soon": want a duration`},
		{env: map[string]string{"STRATA_JOIN_TIMEOUT": "-3"}, wantErr: "want a positive duration"},
		{env: map[string]string{"STRATA_TIMEOUT": "0s"}, wantErr: `STRATA_TIMEOUT="0s": want a positive duration`},
		{env: map[string]string{"STRATA_NCHANNELS": "65"}, wantErr: "from 1 to 64"},
		{env: map[string]string{"STRATA_SPIN_US": "x"}, wantErr: "STRATA_SPIN_US"},
		{env: map[string]string{"STRATA_ALGO": "hier"}, check: func(c Config) bool { return c.Algo != AlgoAuto }},
	} {
		for _, k := range []string{"STRATA_TIMEOUT", "STRATA_JOIN_TIMEOUT", "STRATA_NCHANNELS", "STRATA_SPIN_US", "STRATA_ALGO"} {
			t.Setenv(k, tc.env[k])
		}
		c, err := ConfigFromEnv()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: want an error containing %q, got %v", tc.env, tc.wantErr, err)
			}
			continue
		}
		if err != nil || !tc.check(c) {
			t.Errorf("%v: got %+v, %v", tc.env, c, err)
		}
	}
}

// TestJoinWindowNeverShorterThanTimeout: a join window below the link timeout (or unset, as
// in a Config literal) is raised to it.
func TestJoinWindowNeverShorterThanTimeout(t *testing.T) {
	for _, tc := range []struct{ timeout, join, want time.Duration }{
		{time.Second, 0, time.Second},
		{time.Minute, time.Second, time.Minute},
		{time.Second, time.Hour, time.Hour},
		{0, 0, 30 * time.Second},
	} {
		c := Config{Timeout: tc.timeout, JoinTimeout: tc.join}
		if err := c.normalize(); err != nil {
			t.Fatal(err)
		}
		if c.JoinTimeout != tc.want {
			t.Errorf("Timeout %v, JoinTimeout %v: normalized to %v, want %v", tc.timeout, tc.join, c.JoinTimeout, tc.want)
		}
	}
}
