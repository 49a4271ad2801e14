// Package client is the Go side of credvault for calling services: an
// http.RoundTripper that resolves a credential through the vault and puts
// its parameters on each outbound request.
//
//	rt := &client.Transport{Resolver: credvaultv1.NewResolverServiceClient(conn), Credential: "credentials/weather"}
//	httpClient := &http.Client{Transport: rt}
//
// The gRPC connection carries the caller's identity (a bearer token as
// per-RPC credentials, or an mTLS certificate). Parameters are cached until
// the vault's expire_time minus a margin; concurrent requests share one
// resolve; a 401 from the target triggers one re-resolve with
// force_refresh and one retry.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// Transport applies a credential to every request it carries. Its fields
// must not change after first use; it is safe for concurrent use.
type Transport struct {
	// Resolver reaches the vault.
	Resolver credvaultv1.ResolverServiceClient
	// Credential is the resource name, credentials/{id}.
	Credential string
	// Base carries the decorated requests (default http.DefaultTransport).
	Base http.RoundTripper
	// Margin is subtracted from the vault's expire_time (default 5s), so a
	// cached token is not used in its last seconds.
	Margin time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	flight singleflight.Group
	mu     sync.Mutex // guards cached
	cached *resolved
}

type resolved struct {
	params []*credvaultv1.ResolvedParameter
	until  time.Time
}

// ErrBodyNotMergeable means a request needs body parameters but its body is
// neither a JSON object nor a form: the transport refuses instead of
// sending the request without the credential.
var ErrBodyNotMergeable = errors.New("credvault client: the request body cannot take body parameters (want a JSON object or a form)")

// RoundTrip implements http.RoundTripper. Like every RoundTripper it does
// not modify req: it decorates a clone (as x/oauth2's Transport does).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("credvault client: reading the request body: %w", err)
		}
		body = b
	}
	params, err := t.parameters(req.Context(), req.URL, false)
	if err != nil {
		return nil, err
	}
	out, err := apply(req, body, params)
	if err != nil {
		return nil, err
	}
	resp, err := t.base().RoundTrip(out)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The target refused the credential: ask the vault for a fresh one
	// (it rate-limits forced refreshes per credential) and retry once.
	params, rerr := t.parameters(req.Context(), req.URL, true)
	if rerr != nil {
		return resp, nil // the 401 is the better answer
	}
	retry, aerr := apply(req, body, params)
	if aerr != nil {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.base().RoundTrip(retry)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// parameters returns the cached parameters, or resolves them; concurrent
// callers share one resolve.
func (t *Transport) parameters(ctx context.Context, target *url.URL, force bool) ([]*credvaultv1.ResolvedParameter, error) {
	if !force {
		t.mu.Lock()
		c := t.cached
		t.mu.Unlock()
		if c != nil && t.now().Before(c.until) {
			return c.params, nil
		}
	}
	key := "resolve"
	if force {
		key = "force"
	}
	ch := t.flight.DoChan(key, func() (any, error) {
		u := *target
		u.RawQuery, u.Fragment, u.User = "", "", nil
		r, err := t.Resolver.ResolveCredential(context.WithoutCancel(ctx), &credvaultv1.ResolveCredentialRequest{
			Name: t.Credential, TargetUrl: u.String(), ForceRefresh: force})
		if err != nil {
			return nil, fmt.Errorf("credvault client: resolving %s: %w", t.Credential, err)
		}
		margin := t.Margin
		if margin <= 0 {
			margin = 5 * time.Second
		}
		c := &resolved{params: r.GetParameters(), until: r.GetExpireTime().AsTime().Add(-margin)}
		t.mu.Lock()
		t.cached = c
		t.mu.Unlock()
		return c, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*resolved).params, nil
	}
}

// apply returns a clone of req with the parameters on it: headers set,
// query parameters added, {name} placeholders in the path filled, body
// fields merged into a JSON object or a form.
func apply(req *http.Request, body []byte, params []*credvaultv1.ResolvedParameter) (*http.Request, error) {
	out := req.Clone(req.Context())
	out.Header = req.Header.Clone()
	u := *req.URL
	q := u.Query()
	bodyParams := map[string]string{}
	for _, p := range params {
		switch p.GetLocation() {
		case credvaultv1.Location_LOCATION_HEADER:
			out.Header.Set(p.GetName(), p.GetValue())
		case credvaultv1.Location_LOCATION_QUERY:
			q.Set(p.GetName(), p.GetValue())
		case credvaultv1.Location_LOCATION_PATH:
			ph := "{" + p.GetName() + "}"
			u.Path = strings.ReplaceAll(u.Path, ph, p.GetValue())
			if u.RawPath != "" {
				u.RawPath = strings.ReplaceAll(u.RawPath, url.PathEscape(ph), url.PathEscape(p.GetValue()))
			}
		case credvaultv1.Location_LOCATION_BODY:
			bodyParams[p.GetName()] = p.GetValue()
		default:
			return nil, fmt.Errorf("credvault client: unknown location %v", p.GetLocation())
		}
	}
	u.RawQuery = q.Encode()
	out.URL = &u
	if len(bodyParams) > 0 {
		merged, err := mergeBody(req.Header.Get("Content-Type"), body, bodyParams)
		if err != nil {
			return nil, err
		}
		body = merged
		if out.Header.Get("Content-Type") == "" {
			out.Header.Set("Content-Type", "application/json")
		}
	}
	if body != nil || len(bodyParams) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out, nil
}

// mergeBody adds fields to a JSON object or a form body, respecting the
// content type; an empty body with no content type becomes a JSON object.
func mergeBody(contentType string, body []byte, fields map[string]string) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, ErrBodyNotMergeable
		}
		for k, v := range fields {
			form.Set(k, v)
		}
		return []byte(form.Encode()), nil
	case mt == "application/json" || strings.HasSuffix(mt, "+json") || (mt == "" && len(bytes.TrimSpace(body)) == 0):
		obj := map[string]json.RawMessage{}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &obj); err != nil {
				return nil, ErrBodyNotMergeable
			}
		}
		for k, v := range fields {
			b, _ := json.Marshal(v)
			obj[k] = b
		}
		return json.Marshal(obj)
	}
	return nil, ErrBodyNotMergeable
}
