// Package secret keeps repository secrets safe: encrypted at rest under the
// coordinator's master key (Keyring) and masked out of logs and events
// (Masker).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// KeyFileName is the master key's file in the data directory.
	KeyFileName = "master.key"
	// EnvMasterKey names the environment variable that, when set, holds the
	// master key instead of the file.
	EnvMasterKey = "MONKEYCI_MASTER_KEY"

	keySize     = 32 // AES-256
	nonceSize   = 12 // GCM standard nonce
	sealVersion = 1
)

// Keyring seals and opens secret values with the coordinator's master key.
// It is safe for concurrent use.
type Keyring struct {
	aead cipher.AEAD
	// hint names the key in errors without revealing it: where it came from
	// and the start of its SHA-256, enough to tell two keys apart.
	hint string
}

// LoadKeyring returns the keyring of a data directory. The key is env (the
// value of MONKEYCI_MASTER_KEY, passed in by the caller) when non-empty:
// base64 (standard or raw URL) of 32 bytes, or 64 hex digits. Otherwise it is
// the file DIR/master.key (32 random bytes in base64, mode 0600), made on
// first use. An existing file is never replaced, not even a corrupt one: the
// secrets sealed with it would be lost, so that is left to an operator.
func LoadKeyring(dataDir, env string) (*Keyring, error) {
	if env != "" {
		key, err := decodeKey(env)
		if err != nil {
			return nil, fmt.Errorf("secret: %s: %w", EnvMasterKey, err)
		}
		return newKeyring(key, EnvMasterKey)
	}
	path := filepath.Join(dataDir, KeyFileName)
	key, err := loadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret: master key file %s: %w", path, err)
	}
	return newKeyring(key, path)
}

func newKeyring(key []byte, source string) (*Keyring, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %s: %w", source, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %s: %w", source, err)
	}
	sum := sha256.Sum256(key)
	return &Keyring{aead: aead, hint: fmt.Sprintf("%x from %s", sum[:4], source)}, nil
}

// Seal encrypts value with a fresh random nonce. context (e.g. "repo/KEY") is
// bound as additional data, so a sealed value cannot be moved to another
// name. The result is a version byte (1), the 12-byte nonce, then the
// ciphertext with its tag.
func (k *Keyring) Seal(value []byte, context string) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(value)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("secret: sealing %q: %w", context, err)
	}
	return k.aead.Seal(out, out[1:], value, []byte(context)), nil
}

// Open reverses Seal. A wrong key, a wrong context or a value tampered with
// is an error saying the secret cannot be decrypted with this master key,
// named by a hint (its source and a fingerprint), never the key.
func (k *Keyring) Open(sealed []byte, context string) ([]byte, error) {
	fail := func(err error) error {
		return fmt.Errorf("secret: cannot decrypt %q with master key %s: %w", context, k.hint, err)
	}
	if len(sealed) < 1+nonceSize+k.aead.Overhead() {
		return nil, fail(fmt.Errorf("sealed value too short (%d bytes)", len(sealed)))
	}
	if sealed[0] != sealVersion {
		return nil, fail(fmt.Errorf("unknown format version %d", sealed[0]))
	}
	nonce, ciphertext := sealed[1:1+nonceSize], sealed[1+nonceSize:]
	value, err := k.aead.Open(nil, nonce, ciphertext, []byte(context))
	if err != nil {
		return nil, fail(fmt.Errorf("wrong key, wrong name or tampered value: %w", err))
	}
	return value, nil
}

// loadKeyFile reads the key at path, or makes it when there is none.
func loadKeyFile(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyFile(path)
	}
	return key, err
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeKey(string(data))
}

// createKeyFile writes a new random key to path, atomically and without ever
// replacing a file that is there: the temporary file is hard-linked into
// place, which fails if another process made one first. That process's key
// is the one used then.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}

	placed, err := place(tmp.Name(), path)
	if err != nil {
		return nil, err
	}
	if !placed {
		return readKeyFile(path)
	}
	// Losing the key loses every secret: make the new name durable.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: not every platform syncs directories
		d.Close()
	}
	return key, nil
}

// place gives file tmp the name path unless path exists; placed says which.
func place(tmp, path string) (placed bool, err error) {
	err = os.Link(tmp, path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	// No hard links on this file system: rename, which can only race with
	// another process making the key at the same instant.
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	return true, os.Rename(tmp, path)
}

// decodeKey parses key material: hex, or base64 in any of its usual forms.
// Errors say what is wrong, never what the value is.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s) // files and pasted values end in a newline
	decoders := []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString,
		base64.RawURLEncoding.DecodeString,
		base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString,
	}
	// A key in one form is never a key in another (64 hex digits against
	// 43 or 44 base64 characters), so the first of the right length wins;
	// failing that, the first that decodes at all says what is wrong.
	var first []byte
	for _, decode := range decoders {
		b, err := decode(s)
		if err != nil {
			continue
		}
		if len(b) == keySize {
			return b, nil
		}
		if first == nil {
			first = b
		}
	}
	if first == nil {
		return nil, errors.New("not base64 or hex")
	}
	return nil, fmt.Errorf("%d bytes, want %d", len(first), keySize)
}
