// Package awskms is the AWS KMS key provider: data keys come from KMS
// GenerateDataKey and are unwrapped with Decrypt, always with the
// encryption context {credential, version}, so CloudTrail shows which
// credential was unwrapped and a wrapped key moved to another record fails.
//
// The endpoint, region and credentials come from the standard AWS
// configuration (AWS_REGION, AWS_ENDPOINT_URL_KMS, profiles, instance
// roles): no flag of ours points it anywhere.
package awskms

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/credvault/credvault/vault"
)

// KMSAPI is the part of the KMS client the provider uses; tests and the
// SDK's client both satisfy it.
type KMSAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
	ReEncrypt(ctx context.Context, in *kms.ReEncryptInput, opts ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
}

// Provider is a vault.KeyProvider on AWS KMS.
type Provider struct {
	client  KMSAPI
	keyID   string
	timeout time.Duration

	calls struct{ generate, decrypt, reencrypt, errors atomic.Int64 }
}

var _ vault.KeyProvider = (*Provider)(nil)

// DefaultTimeout bounds one KMS call (with the SDK's own retries) when the
// caller's context has no earlier deadline.
const DefaultTimeout = 5 * time.Second

// New loads the standard AWS configuration and returns a provider for
// keyID (a key id, ARN or alias).
func New(ctx context.Context, keyID string) (*Provider, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	return NewWithClient(kms.NewFromConfig(cfg, Configure), keyID), nil
}

// Configure sets the client options the provider relies on: the SDK's
// standard retryer (throttling and 5xx are retried), bounded so that its
// retries fit in DefaultTimeout instead of being cut off by it.
func Configure(o *kms.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = 3
		so.MaxBackoff = 500 * time.Millisecond
	})
}

// NewWithClient returns a provider using client.
func NewWithClient(client KMSAPI, keyID string) *Provider {
	return &Provider{client: client, keyID: keyID, timeout: DefaultTimeout}
}

// ID implements vault.KeyProvider.
func (p *Provider) ID() string { return "awskms:" + p.keyID }

func (p *Provider) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < p.timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, p.timeout)
}

// GenerateDataKey implements vault.KeyProvider.
func (p *Provider) GenerateDataKey(ctx context.Context, encCtx map[string]string) (vault.DataKey, error) {
	p.calls.generate.Add(1)
	ctx, cancel := p.bound(ctx)
	defer cancel()
	out, err := p.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(p.keyID), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	if err != nil {
		return vault.DataKey{}, p.classify("GenerateDataKey", err)
	}
	if len(out.Plaintext) != 32 || len(out.CiphertextBlob) == 0 {
		return vault.DataKey{}, fmt.Errorf("kms GenerateDataKey: unexpected key sizes: %w", vault.ErrKeyUnavailable)
	}
	return vault.DataKey{Plaintext: out.Plaintext, Wrapped: out.CiphertextBlob}, nil
}

// UnwrapKey implements vault.KeyProvider. It names the key, so a blob
// wrapped by another key fails (IncorrectKeyException) instead of being
// decrypted with whatever key it names.
func (p *Provider) UnwrapKey(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	p.calls.decrypt.Add(1)
	ctx, cancel := p.bound(ctx)
	defer cancel()
	out, err := p.client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob: wrapped, KeyId: aws.String(p.keyID), EncryptionContext: encCtx})
	if err != nil {
		return nil, p.classify("Decrypt", err)
	}
	return out.Plaintext, nil
}

// ReWrap re-encrypts a wrapped key under newKeyID inside KMS (ReEncrypt):
// the data key never leaves KMS in plaintext. For `credvaultd keys rewrap`.
func (p *Provider) ReWrap(ctx context.Context, wrapped []byte, encCtx map[string]string, newKeyID string) ([]byte, error) {
	p.calls.reencrypt.Add(1)
	ctx, cancel := p.bound(ctx)
	defer cancel()
	out, err := p.client.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob: wrapped, SourceKeyId: aws.String(p.keyID), SourceEncryptionContext: encCtx,
		DestinationKeyId: aws.String(newKeyID), DestinationEncryptionContext: encCtx})
	if err != nil {
		return nil, p.classify("ReEncrypt", err)
	}
	return out.CiphertextBlob, nil
}

// Calls returns how many KMS calls were made, by operation, and how many
// failed.
func (p *Provider) Calls() map[string]int64 {
	return map[string]int64{"GenerateDataKey": p.calls.generate.Load(), "Decrypt": p.calls.decrypt.Load(),
		"ReEncrypt": p.calls.reencrypt.Load(), "errors": p.calls.errors.Load()}
}

// classify maps SDK errors by type (never by message) to the vault's
// sentinels. The text names the AWS error code only.
func (p *Provider) classify(op string, err error) error {
	p.calls.errors.Add(1)
	var (
		invalidCiphertext *types.InvalidCiphertextException
		incorrectKey      *types.IncorrectKeyException
		disabled          *types.DisabledException
		invalidState      *types.KMSInvalidStateException
		notFound          *types.NotFoundException
		invalidUsage      *types.InvalidKeyUsageException
	)
	switch {
	case errors.As(err, &invalidCiphertext), errors.As(err, &incorrectKey), errors.As(err, &disabled),
		errors.As(err, &invalidState), errors.As(err, &notFound), errors.As(err, &invalidUsage):
		var ae smithy.APIError
		errors.As(err, &ae)
		return fmt.Errorf("kms %s: %s: %w", op, ae.ErrorCode(), vault.ErrKeyRejected)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("kms %s: %s: %w", op, ae.ErrorCode(), vault.ErrKeyUnavailable)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("kms %s: %w: %w", op, vault.ErrKeyUnavailable, context.DeadlineExceeded)
	}
	return fmt.Errorf("kms %s: unreachable: %w", op, vault.ErrKeyUnavailable)
}

// Rewrapper re-wraps data keys from this provider's key to another KMS key
// with ReEncrypt (vault.Rewrapper).
func (p *Provider) Rewrapper(newKeyID string) vault.Rewrapper {
	return rewrapper{p: p, to: newKeyID}
}

type rewrapper struct {
	p  *Provider
	to string
}

func (r rewrapper) Rewrap(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	return r.p.ReWrap(ctx, wrapped, encCtx, r.to)
}

func (r rewrapper) NewID() string { return "awskms:" + r.to }
