// Package awskmstest is credvault's own AWS KMS fake: an HTTP server that
// speaks the KMS JSON 1.1 protocol (POST /, X-Amz-Target:
// TrentService.<Op>) for the operations the vault uses, with real AWS
// error semantics, so the tests drive the real aws-sdk-go-v2 client. No
// KMS emulator can be installed where credvault is built.
//
// Operations: CreateKey, DescribeKey, GenerateDataKey, Encrypt, Decrypt,
// ReEncrypt. Errors as AWS answers them: a wrong or missing encryption
// context or a tampered blob is InvalidCiphertextException; a blob of
// another key on Decrypt with KeyId is IncorrectKeyException; a disabled
// key is DisabledException; a key pending deletion is
// KMSInvalidStateException; an unknown key or alias is NotFoundException;
// throttling is ThrottlingException (HTTP 400), which the SDK retries.
//
// Ciphertext blobs name their key, as AWS's do, so Decrypt works without
// KeyId. Tests can stop, slow or throttle the fake and count its calls;
// cmd/kmsfake runs it as a process.
package awskmstest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/credvault/credvault/vault"
)

// Account and region of the fake's ARNs.
const (
	Account = "111122223333"
	Region  = "us-east-1"
)

type key struct {
	ID       string `json:"id"`
	Material []byte `json:"material"`
	Enabled  bool   `json:"enabled"`
	Pending  bool   `json:"pending_deletion"`
}

// Fake is a KMS fake. Its methods are safe for concurrent use.
type Fake struct {
	mu       sync.Mutex // guards everything below
	keys     map[string]*key
	aliases  map[string]string // alias/name -> key id
	calls    map[string]int64
	throttle int  // the next throttle calls answer ThrottlingException
	always   bool // throttle every call
	delay    time.Duration
	state    string // file the keys persist to, or ""

	srv *http.Server
	lis net.Listener
	url string
}

// New returns a fake with no keys, not yet listening. statePath, when not
// empty, is a JSON file the keys are loaded from and saved to, so a fake
// restarted as a process still decrypts what it encrypted before.
func New(statePath string) (*Fake, error) {
	f := &Fake{keys: map[string]*key{}, aliases: map[string]string{}, calls: map[string]int64{}, state: statePath}
	if statePath != "" {
		b, err := os.ReadFile(statePath)
		if err == nil {
			var st struct {
				Keys    []*key            `json:"keys"`
				Aliases map[string]string `json:"aliases"`
			}
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("kms fake state %s: %w", statePath, err)
			}
			for _, k := range st.Keys {
				f.keys[k.ID] = k
			}
			if st.Aliases != nil {
				f.aliases = st.Aliases
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return f, nil
}

// Start listens on addr (e.g. 127.0.0.1:0) and serves in the background.
func (f *Fake) Start(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.lis, f.url = lis, "http://"+lis.Addr().String()
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	srv := f.srv
	f.mu.Unlock()
	go srv.Serve(lis)
	return nil
}

// URL is the endpoint to give the SDK (AWS_ENDPOINT_URL_KMS).
func (f *Fake) URL() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.url
}

// Stop closes the listener and every connection: an outage. Start brings
// it back (on a new port unless addr names the old one).
func (f *Fake) Stop() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Addr is the listening address.
func (f *Fake) Addr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lis == nil {
		return ""
	}
	return f.lis.Addr().String()
}

// CreateKey creates an enabled key and returns its id.
func (f *Fake) CreateKey() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.createKeyLocked()
}

func (f *Fake) createKeyLocked() string {
	var id [16]byte
	rand.Read(id[:])
	h := hex.EncodeToString(id[:])
	k := &key{ID: h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], Material: make([]byte, 32), Enabled: true}
	rand.Read(k.Material)
	f.keys[k.ID] = k
	f.saveLocked()
	return k.ID
}

// ARN returns the ARN of key id.
func ARN(id string) string { return "arn:aws:kms:" + Region + ":" + Account + ":key/" + id }

// AddAlias points alias/name at key id.
func (f *Fake) AddAlias(alias, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aliases[alias] = id
	f.saveLocked()
}

// SetEnabled enables or disables a key.
func (f *Fake) SetEnabled(id string, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[id]; k != nil {
		k.Enabled = enabled
	}
	f.saveLocked()
}

// ScheduleDeletion puts a key in the PendingDeletion state.
func (f *Fake) ScheduleDeletion(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[id]; k != nil {
		k.Pending = true
	}
	f.saveLocked()
}

// Throttle makes the next n calls answer ThrottlingException; n < 0
// throttles every call until Throttle(0).
func (f *Fake) Throttle(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle, f.always = max(n, 0), n < 0
}

// SetDelay slows every call by d.
func (f *Fake) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Calls returns how many calls of op reached the fake ("" for all).
func (f *Fake) Calls(op string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op != "" {
		return f.calls[op]
	}
	var n int64
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *Fake) saveLocked() {
	if f.state == "" {
		return
	}
	st := struct {
		Keys    []*key            `json:"keys"`
		Aliases map[string]string `json:"aliases"`
	}{Aliases: f.aliases}
	for _, k := range f.keys {
		st.Keys = append(st.Keys, k)
	}
	b, _ := json.Marshal(st)
	tmp := f.state + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, f.state)
	}
}

// kmsError is an AWS error answer.
type kmsError struct {
	typ, msg string
}

func (e *kmsError) Error() string { return e.typ + ": " + e.msg }

func errf(typ, format string, args ...any) *kmsError {
	return &kmsError{typ: typ, msg: fmt.Sprintf(format, args...)}
}

// StatsPath answers GET with the call counts by operation (JSON), for
// benchmarks that count KMS calls of a fake running as a process.
const StatsPath = "/_fake/stats"

// ServeHTTP implements the KMS JSON 1.1 protocol.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == StatsPath {
		f.mu.Lock()
		b, _ := json.Marshal(f.calls)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	if r.Method != http.MethodPost || !ok {
		writeErr(w, errf("UnknownOperationException", "not a KMS request"))
		return
	}
	var in map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeErr(w, errf("SerializationException", "bad JSON"))
		return
	}
	f.mu.Lock()
	f.calls[op]++
	delay := f.delay
	throttled := f.always || f.throttle > 0
	if f.throttle > 0 {
		f.throttle--
	}
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if throttled {
		writeErr(w, errf("ThrottlingException", "Rate exceeded"))
		return
	}
	f.mu.Lock()
	out, kerr := f.dispatchLocked(op, in)
	f.mu.Unlock()
	if kerr != nil {
		writeErr(w, kerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func writeErr(w http.ResponseWriter, e *kmsError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	status := http.StatusBadRequest
	if e.typ == "KMSInternalException" {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func str(in map[string]json.RawMessage, k string) string {
	var s string
	json.Unmarshal(in[k], &s)
	return s
}

func blob(in map[string]json.RawMessage, k string) []byte {
	var b []byte // base64 in JSON, as the SDK sends it
	json.Unmarshal(in[k], &b)
	return b
}

func encCtx(in map[string]json.RawMessage, k string) map[string]string {
	var m map[string]string
	json.Unmarshal(in[k], &m)
	return m
}

func (f *Fake) dispatchLocked(op string, in map[string]json.RawMessage) (any, *kmsError) {
	switch op {
	case "CreateKey":
		id := f.createKeyLocked()
		return map[string]any{"KeyMetadata": f.metadata(f.keys[id])}, nil
	case "DescribeKey":
		k, err := f.findLocked(str(in, "KeyId"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"KeyMetadata": f.metadata(k)}, nil
	case "GenerateDataKey":
		k, err := f.usableLocked(str(in, "KeyId"))
		if err != nil {
			return nil, err
		}
		n := 32
		if spec := str(in, "KeySpec"); spec == "AES_128" {
			n = 16
		}
		var nb int
		if json.Unmarshal(in["NumberOfBytes"], &nb) == nil && nb > 0 {
			n = nb
		}
		plain := make([]byte, n)
		rand.Read(plain)
		return map[string]any{"CiphertextBlob": seal(k, plain, encCtx(in, "EncryptionContext")), "Plaintext": plain, "KeyId": ARN(k.ID)}, nil
	case "Encrypt":
		k, err := f.usableLocked(str(in, "KeyId"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"CiphertextBlob": seal(k, blob(in, "Plaintext"), encCtx(in, "EncryptionContext")), "KeyId": ARN(k.ID)}, nil
	case "Decrypt":
		k, plain, err := f.openLocked(blob(in, "CiphertextBlob"), str(in, "KeyId"), encCtx(in, "EncryptionContext"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"Plaintext": plain, "KeyId": ARN(k.ID)}, nil
	case "ReEncrypt":
		src, plain, err := f.openLocked(blob(in, "CiphertextBlob"), str(in, "SourceKeyId"), encCtx(in, "SourceEncryptionContext"))
		if err != nil {
			return nil, err
		}
		dst, err := f.usableLocked(str(in, "DestinationKeyId"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"CiphertextBlob": seal(dst, plain, encCtx(in, "DestinationEncryptionContext")),
			"KeyId": ARN(dst.ID), "SourceKeyId": ARN(src.ID)}, nil
	}
	return nil, errf("UnknownOperationException", "operation %s is not supported by the fake", op)
}

func (f *Fake) metadata(k *key) map[string]any {
	state := "Enabled"
	switch {
	case k.Pending:
		state = "PendingDeletion"
	case !k.Enabled:
		state = "Disabled"
	}
	return map[string]any{"KeyId": k.ID, "Arn": ARN(k.ID), "Enabled": k.Enabled && !k.Pending, "KeyState": state,
		"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "AWSAccountId": Account}
}

// findLocked resolves a key id, key ARN, alias name or alias ARN.
func (f *Fake) findLocked(ref string) (*key, *kmsError) {
	if ref == "" {
		return nil, errf("ValidationException", "KeyId is required")
	}
	id := ref
	if rest, ok := strings.CutPrefix(ref, "arn:aws:kms:"+Region+":"+Account+":"); ok {
		id = rest
	}
	if rest, ok := strings.CutPrefix(id, "key/"); ok {
		id = rest
	}
	if strings.HasPrefix(id, "alias/") {
		target, ok := f.aliases[id]
		if !ok {
			return nil, errf("NotFoundException", "Alias %s is not found.", ref)
		}
		id = target
	}
	k, ok := f.keys[id]
	if !ok {
		return nil, errf("NotFoundException", "Key '%s' does not exist", ARN(id))
	}
	return k, nil
}

func (f *Fake) usableLocked(ref string) (*key, *kmsError) {
	k, err := f.findLocked(ref)
	if err != nil {
		return nil, err
	}
	return k, stateErr(k)
}

func stateErr(k *key) *kmsError {
	switch {
	case k.Pending:
		return errf("KMSInvalidStateException", "%s is pending deletion.", ARN(k.ID))
	case !k.Enabled:
		return errf("DisabledException", "%s is disabled.", ARN(k.ID))
	}
	return nil
}

// Blob format: version 1 | uint16 key id length | key id | 12-byte nonce |
// AES-256-GCM ciphertext, the encryption context as additional data.
func seal(k *key, plain []byte, ctx map[string]string) []byte {
	aead := gcm(k.Material)
	out := []byte{1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(k.ID)))
	out = append(out, k.ID...)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, vault.ContextAAD(ctx))
}

func (f *Fake) openLocked(b []byte, keyRef string, ctx map[string]string) (*key, []byte, *kmsError) {
	invalid := errf("InvalidCiphertextException", "")
	if len(b) < 3 || b[0] != 1 {
		return nil, nil, invalid
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if len(b) < 3+n+12+16 {
		return nil, nil, invalid
	}
	id := string(b[3 : 3+n])
	k, ok := f.keys[id]
	if !ok {
		return nil, nil, invalid
	}
	if keyRef != "" {
		want, err := f.findLocked(keyRef)
		if err != nil {
			return nil, nil, err
		}
		if want.ID != k.ID {
			return nil, nil, errf("IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
		}
	}
	if err := stateErr(k); err != nil {
		return nil, nil, err
	}
	nonce := b[3+n : 3+n+12]
	plain, err := gcm(k.Material).Open(nil, nonce, b[3+n+12:], vault.ContextAAD(ctx))
	if err != nil {
		return nil, nil, invalid
	}
	return k, plain, nil
}

func gcm(k []byte) cipher.AEAD {
	block, _ := aes.NewCipher(k)
	aead, _ := cipher.NewGCM(block)
	return aead
}

// EnsureAlias returns the key alias points at, creating both if missing.
func (f *Fake) EnsureAlias(alias string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.aliases[alias]; ok {
		if _, ok := f.keys[id]; ok {
			return id, nil
		}
	}
	if !strings.HasPrefix(alias, "alias/") {
		return "", fmt.Errorf("alias %q must start with alias/", alias)
	}
	id := f.createKeyLocked()
	f.aliases[alias] = id
	f.saveLocked()
	return id, nil
}
