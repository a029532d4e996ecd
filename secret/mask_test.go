package secret

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// refMask is the definition Masker implements, the slow way: mark every byte
// of every occurrence of every secret (of at least 4 bytes), then replace
// each run of overlapping occurrences with "***".
func refMask(secrets []string, s string) string {
	type span struct{ from, to int }
	var spans []span
	for i := 0; i < len(s); i++ { // every byte, not every rune
		for _, sec := range secrets {
			if len(sec) >= MinMaskLen && strings.HasPrefix(s[i:], sec) {
				spans = append(spans, span{i, i + len(sec)})
			}
		}
	}
	var b strings.Builder
	at, runEnd := 0, -1
	for _, sp := range spans { // in order of start
		if sp.from < runEnd {
			runEnd = max(runEnd, sp.to)
			at = runEnd
			continue
		}
		b.WriteString(s[at:sp.from])
		b.WriteString("***")
		at, runEnd = sp.to, sp.to
	}
	b.WriteString(s[at:])
	return b.String()
}

func TestMaskerString(t *testing.T) {
	for _, tc := range []struct {
		secrets []string
		in      string
		want    string
	}{
		{nil, "nothing to hide", "nothing to hide"},
		{[]string{"hunter2"}, "pw=hunter2!", "pw=***!"},
		{[]string{"hunter2"}, "hunter2hunter2", "******"},
		{[]string{"1", "abc", ""}, "a1b abc", "a1b abc"}, // too short to mask
		{[]string{"pass", "password"}, "my password", "my ***"},
		{[]string{"pass", "password"}, "my pass word", "my *** word"},
		{[]string{"abcd", "bcdefghij"}, "xabcdefghijx", "x***x"},       // shorter one first
		{[]string{"aaaa"}, "aaaaaaa b aaa", "*** b aaa"},               // self-overlap
		{[]string{"abab"}, "abababab", "***"},                          // self-overlap
		{[]string{"token", "token", "ken!"}, "token!", "***"},          // duplicates
		{[]string{"séchage"}, "le séchage rapide", "le *** rapide"},    // UTF-8
		{[]string{"abcd", "cdxyzw"}, "abcdxyzw abcdxyz", "*** ***xyz"}, // union across secrets
	} {
		m := NewMasker(tc.secrets)
		if got := m.String(tc.in); got != tc.want {
			t.Errorf("NewMasker(%q).String(%q) = %q, want %q", tc.secrets, tc.in, got, tc.want)
		}
		if got := refMask(tc.secrets, tc.in); got != tc.want {
			t.Errorf("refMask(%q, %q) = %q, want %q (test is wrong)", tc.secrets, tc.in, got, tc.want)
		}
	}
}

func TestMaskerEmpty(t *testing.T) {
	if !NewMasker(nil).Empty() || !NewMasker([]string{"", "abc"}).Empty() {
		t.Error("masker of no usable secrets is not Empty")
	}
	if NewMasker([]string{"abcd"}).Empty() {
		t.Error("masker of a secret is Empty")
	}
}

func TestStreamNoSecretsNoCopy(t *testing.T) {
	s := NewMasker([]string{"abc"}).Stream() // too short: no secrets
	p := []byte("some output")
	if got := s.Write(p); &got[0] != &p[0] || len(got) != len(p) {
		t.Error("Write with no secrets did not return p itself")
	}
	if got := s.Flush(); len(got) != 0 {
		t.Errorf("Flush = %q, want nothing", got)
	}
}

func TestStreamPassesOnWithoutDelay(t *testing.T) {
	s := NewMasker([]string{"hunter2"}).Stream()
	for _, tc := range []struct{ in, want string }{
		{"no secret here\n", "no secret here\n"}, // nothing held
		{"pw=hun", "pw="},                        // "hun" could be the start
		{"ter", ""},                              // "hunter" still could
		{"2 ok hu", "*** ok "},
		{"man", "human"}, // was not a secret after all
		{"hunter", ""},
	} {
		if got := string(s.Write([]byte(tc.in))); got != tc.want {
			t.Errorf("Write(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := string(s.Flush()); got != "hunter" {
		t.Errorf("Flush = %q, want %q", got, "hunter")
	}
}

func TestStreamFlushMidSecret(t *testing.T) {
	// A writer that goes quiet in the middle of a secret: the prefix shows
	// (Flush must pass it on), the rest is still masked.
	s := NewMasker([]string{"hunter2"}).Stream()
	var got []byte
	got = append(got, s.Write([]byte("pw=hunt"))...)
	got = append(got, s.Flush()...)
	got = append(got, s.Write([]byte("er2 and hunter2"))...)
	got = append(got, s.Flush()...)
	if string(got) != "pw=hunt*** and ***" {
		t.Errorf("got %q", got)
	}
}

// checkStream writes in to a stream of secrets in the pieces given by sizes
// (cycled), and checks the result against Masker.String and refMask, that no
// secret shows and that little is held back. flushEvery > 0 flushes after
// every so many writes, when only the secrets check applies.
func checkStream(t *testing.T, secrets []string, in []byte, sizes []int, flushEvery int) {
	t.Helper()
	m := NewMasker(secrets)
	s := m.Stream()
	var got []byte
	for n, rest := 0, in; len(rest) > 0; n++ {
		size := len(rest)
		if len(sizes) > 0 {
			size = min(sizes[n%len(sizes)], len(rest))
		}
		got = append(got, s.Write(rest[:size])...)
		rest = rest[size:]
		if held := len(s.tail) - s.out; held > max(m.maxLen-1, 0) {
			t.Fatalf("%d bytes held back, longest secret is %d", held, m.maxLen)
		}
		if flushEvery > 0 && n%flushEvery == 0 {
			got = append(got, s.Flush()...)
		}
	}
	got = append(got, s.Flush()...)

	for _, sec := range secrets {
		if len(sec) >= MinMaskLen && !strings.Contains(sec, "*") && bytes.Contains(got, []byte(sec)) {
			t.Fatalf("secrets %q, input %q, sizes %v: output %q shows %q", secrets, in, sizes, got, sec)
		}
	}
	if flushEvery > 0 {
		return
	}
	want := m.String(string(in))
	if string(got) != want {
		t.Fatalf("secrets %q, input %q, sizes %v:\nstream %q\nString %q", secrets, in, sizes, got, want)
	}
	if ref := refMask(secrets, string(in)); want != ref {
		t.Fatalf("secrets %q, input %q:\nString %q\nref    %q", secrets, in, want, ref)
	}
}

// TestStreamProperty: however the input is split, the stream gives what
// String gives for the whole, on inputs dense in overlapping matches.
func TestStreamProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		alphabet := "ab*c"[:2+rng.IntN(3)]
		secrets := make([]string, 1+rng.IntN(4))
		for i := range secrets {
			secrets[i] = word(alphabet, 1+rng.IntN(8))
		}
		in := []byte(word(alphabet, rng.IntN(60)))
		sizes := make([]int, 1+rng.IntN(5))
		for i := range sizes {
			sizes[i] = 1 + rng.IntN(10)
		}
		checkStream(t, secrets, in, sizes, 0)
		checkStream(t, secrets, in, sizes, 1+rng.IntN(3))
	}
}

func FuzzStream(f *testing.F) {
	f.Add("hunter2\npassword\npass", []byte("my password is hunter2, pass it on"), []byte{3, 1, 7})
	f.Add("aaaa\nabab", []byte("aaaaaaabababab"), []byte{1})
	f.Add("abcd\nbcdefghij\ncdxyzw", []byte("abcdefghij abcdxyzw"), []byte{2, 5})
	f.Fuzz(func(t *testing.T, secrets string, in []byte, sizes []byte) {
		var ns []int
		for _, b := range sizes {
			ns = append(ns, 1+int(b%32))
		}
		checkStream(t, strings.Split(secrets, "\n"), in, ns, 0)
	})
}

// benchInput is n bytes of log lines, a few of them with a secret.
func benchInput(n int, secrets []string) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2025-01-02T03:04:05Z step %d: compiling package github.com/example/pkg%d ok\n", i, rng.IntN(1000))
		if i%1000 == 0 {
			fmt.Fprintf(&b, "export TOKEN=%s\n", secrets[rng.IntN(len(secrets))])
		}
	}
	return b.Bytes()[:n]
}

func benchSecrets() []string {
	var secrets []string
	for i := range 10 {
		secrets = append(secrets, fmt.Sprintf("ghp_%02dxK9pQ2mZ7vL4rT8wN1sB6yH3jF5dC0aE", i))
	}
	return secrets
}

// BenchmarkStream masks a 64 MB stream in 64 KB writes with 10 secrets:
// tokens of 40 bytes, and then the worst case of one being only 4 bytes
// (every position must be looked at).
func BenchmarkStream(b *testing.B) {
	tokens := benchSecrets()
	for _, bc := range []struct {
		name    string
		secrets []string
	}{
		{"tokens", tokens},
		{"short", append(tokens[:9:9], "pkg9")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := benchInput(64<<20, bc.secrets)
			m := NewMasker(bc.secrets)
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				s := m.Stream()
				for p := in; len(p) > 0; p = p[min(len(p), 64<<10):] {
					s.Write(p[:min(len(p), 64<<10)])
				}
				s.Flush()
			}
		})
	}
}
