package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestAdviseGivesHugePages: a fresh 8 MiB mapping advised before it is written comes back
// backed (in part at least) by huge pages, per the kernel's own accounting in smaps, and keeps
// every byte written; a buffer under one huge page is left alone.
func TestAdviseGivesHugePages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("transparent huge pages are a Linux feature")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("this kernel offers no transparent huge pages (%q, %v)", mode, err)
	}
	const size = 8 << 20
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	Advise(b)
	for i := range b {
		b[i] = byte(i * 7)
	}
	Advise(b) // collapses what the first call could not
	for i := range b {
		if b[i] != byte(i*7) {
			t.Fatalf("byte %d changed", i)
		}
	}
	kb, err := anonHugeKB(uintptr(unsafe.Pointer(&b[0])))
	if err != nil {
		t.Fatal(err)
	}
	if kb == 0 {
		t.Fatalf("no huge pages under an advised 8 MiB mapping (THP mode %q)", strings.TrimSpace(string(mode)))
	}
	t.Logf("%d kB of 8192 on huge pages", kb)

	small := make([]byte, 64<<10) // must be a no-op, not a fault
	Advise(small)
	Advise(nil)
	Floats(nil)
	Words(make([]uint16, 3))
}

// anonHugeKB reads the AnonHugePages of the smaps entry that holds addr.
func anonHugeKB(addr uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, ok := strings.Cut(fields[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			z, err2 := strconv.ParseUint(hi, 16, 64)
			in = ok && err1 == nil && err2 == nil && uint64(addr) >= a && uint64(addr) < z
			continue
		}
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, fmt.Errorf("no smaps entry holds %#x", addr)
}
