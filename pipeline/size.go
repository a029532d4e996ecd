package pipeline

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bounds on resources. They keep arithmetic far from overflow and catch
// typos early; Docker refuses less than 6 MB of memory. A job's CPUs are
// counted in thousandths, as scripts' are.
const (
	maxCPUs = 1024
	minCPUs = 0.001
	maxPids = 1 << 22 // the kernel's highest pid_max
	// maxCreditMultiplier is the most MonkeyCI lets a job weigh.
	maxCreditMultiplier = 99
	minMemory           = 6 << 20
	maxMemory           = 4 << 40
	gb                  = 1 << 30
)

// sizeResources is what "size: N" means: N CPUs and 2N GB.
func sizeResources(n int) (cpus float64, memory int64) {
	return float64(n), int64(n) * DefaultMemory
}

var memoryRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)$`)

// memoryUnits are binary multiples, as Docker reads "512m" and "2g".
var memoryUnits = map[string]float64{
	"": gb, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": gb, "gb": gb, "gi": gb, "gib": gb,
	"t": 1 << 40, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}

const memoryExpected = `expected a number of GB or a size like "512m", "2g" or "1.5GB"`

// ParseMemory reads a memory size: a bare number is GB, as in MonkeyCI
// (build files, script.yaml and `monkeyci job run --memory` alike).
func ParseMemory(s string) (int64, error) {
	m := memoryRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q, %s", s, memoryExpected)
	}
	unit, ok := memoryUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q in %q, %s", m[2], s, memoryExpected)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q, %s", s, memoryExpected)
	}
	return memoryBytes(f*unit, s)
}

// memoryBytes checks a size in bytes against the bounds.
func memoryBytes(b float64, written string) (int64, error) {
	switch {
	case math.IsNaN(b) || b < minMemory:
		return 0, fmt.Errorf("%s is too small, expected at least 6m", written)
	case b > maxMemory:
		return 0, fmt.Errorf("%s is too large, expected at most 4t", written)
	}
	return int64(math.Round(b)), nil
}

// parseTimeout reads a Go duration ("10m", "90s") or a number of seconds.
func parseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return timeoutSeconds(f, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q, expected a duration like \"10m\" or \"90s\", or a number of seconds", s)
	}
	return checkTimeout(d, s)
}

func timeoutSeconds(f float64, written string) (time.Duration, error) {
	if f > MaxTimeout.Seconds() {
		return 0, fmt.Errorf("%s is above the maximum of %s", written, shortDuration(MaxTimeout))
	}
	if !(f > 0) {
		return 0, fmt.Errorf("%s is not positive, expected a duration like \"10m\"", written)
	}
	return checkTimeout(time.Duration(f*float64(time.Second)), written)
}

func checkTimeout(d time.Duration, written string) (time.Duration, error) {
	switch {
	case d <= 0:
		return 0, fmt.Errorf("%s is not positive, expected a duration like \"10m\"", written)
	case d > MaxTimeout:
		return 0, fmt.Errorf("%s is above the maximum of %s", written, shortDuration(MaxTimeout))
	}
	return d, nil
}

// formatMemory renders bytes the way people write them: "2 GB", "512 MB".
func formatMemory(b int64) string {
	switch {
	case b >= gb && b%gb == 0:
		return fmt.Sprintf("%d GB", b/gb)
	case b >= gb && (b*10)%gb == 0:
		return fmt.Sprintf("%.1f GB", float64(b)/gb)
	case b%(1<<20) == 0:
		return fmt.Sprintf("%d MB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}

// shortDuration drops zero minutes and seconds: 6h, not 6h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
