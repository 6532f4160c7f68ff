//go:build amd64 && !linux

package kernels

// hasAMX is false off Linux: other systems' ways of granting a process the AMX tile state
// are not wired up, so the matmuls stay on AVX-512 there.
const hasAMX = false
