package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var testKey = bytes.Repeat([]byte{0x5a, 0xc3}, 16)

func testKeyring(t *testing.T, key []byte) *Keyring {
	t.Helper()
	k, err := LoadKeyring(t.TempDir(), hex.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKeyring(t, testKey)
	for _, value := range []string{"", "hunter2", strings.Repeat("x", 10000)} {
		sealed, err := k.Seal([]byte(value), "repo/KEY")
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+12+len(value)+16 || sealed[0] != 1 {
			t.Fatalf("sealed %d bytes, version %d", len(sealed), sealed[0])
		}
		if value != "" && bytes.Contains(sealed, []byte(value)) {
			t.Fatal("sealed value contains the plain text")
		}
		got, err := k.Open(sealed, "repo/KEY")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != value {
			t.Fatalf("Open = %q, want %q", got, value)
		}
	}

	a, _ := k.Seal([]byte("v"), "repo/KEY")
	b, _ := k.Seal([]byte("v"), "repo/KEY")
	if bytes.Equal(a, b) {
		t.Error("two seals of one value are equal: nonce not fresh")
	}
}

// checkOpenFails checks that Open fails with an error that says what failed
// and with which key, and does not give the key away.
func checkOpenFails(t *testing.T, k *Keyring, sealed []byte, context string) {
	t.Helper()
	v, err := k.Open(sealed, context)
	if err == nil {
		t.Fatalf("Open(%q) = %q, want an error", context, v)
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot decrypt") || !strings.Contains(msg, context) || !strings.Contains(msg, k.hint) {
		t.Errorf("error %q does not say what failed with which key (%s)", msg, k.hint)
	}
	for _, form := range []string{hex.EncodeToString(testKey), base64.StdEncoding.EncodeToString(testKey)} {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(form)) {
			t.Errorf("error %q gives the key away", msg)
		}
	}
}

func TestOpenFails(t *testing.T) {
	k := testKeyring(t, testKey)
	sealed, err := k.Seal([]byte("hunter2"), "repo/KEY")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("wrong context", func(t *testing.T) {
		checkOpenFails(t, k, sealed, "repo/OTHER")
		checkOpenFails(t, k, sealed, "other/KEY")
	})
	t.Run("tampered", func(t *testing.T) {
		for i := range sealed {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			checkOpenFails(t, k, bad, "repo/KEY")
		}
		checkOpenFails(t, k, sealed[:len(sealed)-1], "repo/KEY")
		checkOpenFails(t, k, sealed[:5], "repo/KEY")
		checkOpenFails(t, k, nil, "repo/KEY")
	})
	t.Run("another key", func(t *testing.T) {
		other := testKeyring(t, bytes.Repeat([]byte{7}, 32))
		if other.hint == k.hint {
			t.Fatalf("two keys have one hint %q", k.hint)
		}
		checkOpenFails(t, other, sealed, "repo/KEY")
	})
}

func TestLoadKeyringEnv(t *testing.T) {
	want := testKeyring(t, testKey)
	sealed, err := want.Seal([]byte("v"), "c")
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{
		base64.StdEncoding.EncodeToString(testKey),
		base64.RawURLEncoding.EncodeToString(testKey),
		hex.EncodeToString(testKey),
		strings.ToUpper(hex.EncodeToString(testKey)),
		base64.StdEncoding.EncodeToString(testKey) + "\n",
	} {
		dir := t.TempDir()
		k, err := LoadKeyring(dir, env)
		if err != nil {
			t.Errorf("LoadKeyring(%q): %v", env, err)
			continue
		}
		if _, err := k.Open(sealed, "c"); err != nil {
			t.Errorf("LoadKeyring(%q): another key: %v", env, err)
		}
		if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !os.IsNotExist(err) {
			t.Errorf("LoadKeyring(%q) touched the key file: %v", env, err)
		}
	}
}

func TestLoadKeyringBadEnv(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{base64.StdEncoding.EncodeToString(testKey[:24]), "MONKEYCI_MASTER_KEY: 24 bytes, want 32"},
		{base64.RawURLEncoding.EncodeToString(append(testKey, 0xfb)), "MONKEYCI_MASTER_KEY: 33 bytes, want 32"},
		{hex.EncodeToString(testKey[:16]), "MONKEYCI_MASTER_KEY: 16 bytes, want 32"},
		{"not a key!", "MONKEYCI_MASTER_KEY: not base64 or hex"},
		{"  ", "MONKEYCI_MASTER_KEY: 0 bytes, want 32"},
		{"+-" + hex.EncodeToString(testKey)[2:], "MONKEYCI_MASTER_KEY: not base64 or hex"},
	} {
		_, err := LoadKeyring(t.TempDir(), tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadKeyring(%q) error %v, want %q", tc.env, err, tc.want)
		}
	}
}

func TestLoadKeyringFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // made too
	k1, err := LoadKeyring(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil || len(key) != 32 {
		t.Errorf("key file %q: not base64 of 32 bytes (%v)", data, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data directory has %d entries, want only the key (no temp files)", len(entries))
	}

	sealed, err := k1.Seal([]byte("v"), "c")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeyring(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Open(sealed, "c"); err != nil {
		t.Errorf("second load has another key: %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("second load rewrote the key file")
	}
}

func TestLoadKeyringExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	data := []byte(hex.EncodeToString(testKey) + "\n") // any accepted form
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyring(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := testKeyring(t, testKey).Seal([]byte("v"), "c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(sealed, "c"); err != nil {
		t.Errorf("key from the file not used: %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("existing key file rewritten")
	}
}

func TestLoadKeyringCorruptFile(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"", "0 bytes, want 32"},
		{base64.StdEncoding.EncodeToString(testKey[:31]), "31 bytes, want 32"},
		{"garbage!", "not base64 or hex"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, KeyFileName)
		if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyring(dir, "")
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("file %q: error %v, want one naming %s and saying %q", tc.data, err, path, tc.want)
		}
		if again, _ := os.ReadFile(path); string(again) != tc.data {
			t.Errorf("corrupt key file %q replaced by %q", tc.data, again)
		}
	}
}

func TestLoadKeyringLostRace(t *testing.T) {
	// Another process made the key between our read and our link: its key
	// is used and kept.
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	data := []byte(base64.StdEncoding.EncodeToString(testKey))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := createKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, testKey) {
		t.Error("createKeyFile did not use the key already there")
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("createKeyFile replaced the key already there")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data directory has %d entries, want only the key", len(entries))
	}
}
