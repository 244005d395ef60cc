package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
)

// Algorithms, by the key type that verifies them.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// publicKey is one verification key and the one algorithm it verifies.
type publicKey struct {
	kid string // "" for PEM keys and kid-less JWKS keys
	alg string // algRS256 or algES256
	key crypto.PublicKey
}

// describe names the key for an error message: its kid (if any) and type.
func (k publicKey) describe() string {
	typ := "RSA"
	if k.alg == algES256 {
		typ = "EC P-256"
	}
	if k.kid == "" {
		return "a " + typ + " key"
	}
	return fmt.Sprintf("key %s (%s)", quoteClip(k.kid), typ)
}

// keySet is an immutable snapshot of the public keys; a reload builds a
// new one.
type keySet struct {
	byKID map[string]publicKey
	all   []publicKey // every key, PEM keys first
}

func newKeySet(keys []publicKey) *keySet {
	ks := &keySet{byKID: make(map[string]publicKey)}
	for _, k := range keys {
		if k.kid != "" {
			ks.byKID[k.kid] = k
		}
		ks.all = append(ks.all, k)
	}
	return ks
}

// forAlg returns the keys that verify alg; withKID false leaves out keys
// that have a kid.
func (ks *keySet) forAlg(alg string, withKID bool) []publicKey {
	var out []publicKey
	for _, k := range ks.all {
		if k.alg == alg && (withKID || k.kid == "") {
			out = append(out, k)
		}
	}
	return out
}

// readPEMFile reads every public key of a PEM file.
func readPEMFile(path string) ([]publicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &SourceError{Field: "PublicKeyFile", Value: path, Err: withoutPath(err)}
	}
	keys, err := parsePEM(data)
	if err != nil {
		return nil, &SourceError{Field: "PublicKeyFile", Value: path, Err: err}
	}
	return keys, nil
}

// parsePEM decodes PUBLIC KEY, RSA PUBLIC KEY and CERTIFICATE blocks. Any
// other block (a private key in particular) is an error, and so is a file
// without keys.
func parsePEM(data []byte) ([]publicKey, error) {
	var keys []publicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %d is a %q; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		k, err := checkKey(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM-encoded public key or certificate found")
	}
	return keys, nil
}

// checkKey accepts RSA keys of at least MinRSABits and ECDSA P-256 keys.
func checkKey(pub any) (publicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return publicKey{}, fmt.Errorf("RSA key of %d bits, want at least %d", bits, MinRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return publicKey{}, fmt.Errorf("RSA key with invalid public exponent %d", k.E)
		}
		return publicKey{alg: algRS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return publicKey{}, fmt.Errorf("ECDSA key on curve %s, want P-256", k.Curve.Params().Name)
		}
		return publicKey{alg: algES256, key: k}, nil
	default:
		return publicKey{}, fmt.Errorf("unsupported key type %T, want RSA or ECDSA P-256", pub)
	}
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518) we read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS decodes a key set. Keys we cannot use for RS256 or ES256
// (other types or curves, encryption keys, other declared algorithms) are
// returned as skipped notes for the log; a malformed RSA or EC key, a
// duplicate kid and a set without usable keys are errors.
func parseJWKS(data []byte) (keys []publicKey, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	seen := make(map[string]bool)
	for i, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		name := fmt.Sprintf("keys[%d]", i)
		if j.Kid != "" {
			name += " (kid " + quoteClip(j.Kid) + ")"
		}
		if j.Use != "" && j.Use != "sig" {
			skipped = append(skipped, fmt.Sprintf("%s: use %q", name, j.Use))
			continue
		}
		var k publicKey
		switch j.Kty {
		case "RSA":
			if j.Alg != "" && j.Alg != algRS256 {
				skipped = append(skipped, fmt.Sprintf("%s: alg %q", name, j.Alg))
				continue
			}
			k, err = rsaJWK(j)
		case "EC":
			if j.Crv != "P-256" {
				skipped = append(skipped, fmt.Sprintf("%s: curve %q", name, j.Crv))
				continue
			}
			if j.Alg != "" && j.Alg != algES256 {
				skipped = append(skipped, fmt.Sprintf("%s: alg %q", name, j.Alg))
				continue
			}
			k, err = ecJWK(j)
		default:
			skipped = append(skipped, fmt.Sprintf("%s: kty %q", name, j.Kty))
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if j.Kid != "" {
			if seen[j.Kid] {
				return nil, nil, fmt.Errorf("%s: duplicate kid", name)
			}
			seen[j.Kid] = true
		}
		k.kid = j.Kid
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("no usable key (RSA or EC P-256 signing key) among %d", len(doc.Keys))
	}
	return keys, skipped, nil
}

func rsaJWK(j jwk) (publicKey, error) {
	n, err := b64Int("n", j.N)
	if err != nil {
		return publicKey{}, err
	}
	e, err := b64Int("e", j.E)
	if err != nil {
		return publicKey{}, err
	}
	if !e.IsInt64() || e.Int64() > 1<<31-1 {
		return publicKey{}, errors.New(`"e" is too large`)
	}
	return checkKey(&rsa.PublicKey{N: n, E: int(e.Int64())})
}

func ecJWK(j jwk) (publicKey, error) {
	x, err := b64Bytes("x", j.X)
	if err != nil {
		return publicKey{}, err
	}
	y, err := b64Bytes("y", j.Y)
	if err != nil {
		return publicKey{}, err
	}
	if len(x) != 32 || len(y) != 32 {
		return publicKey{}, errors.New(`"x" and "y" must be 32 bytes each for P-256`)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return publicKey{}, fmt.Errorf("not a P-256 point: %w", err)
	}
	return checkKey(pub)
}

func b64Bytes(field, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%q is missing", field)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not base64url: %w", field, err)
	}
	return b, nil
}

func b64Int(field, s string) (*big.Int, error) {
	b, err := b64Bytes(field, s)
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}

// fetchJWKS reads a key set from a URL or a file.
func fetchJWKS(ctx context.Context, client *http.Client, rawURL, file string) ([]publicKey, []string, error) {
	var data []byte
	var err error
	src := &SourceError{Field: "JWKSURL", Value: rawURL}
	if rawURL != "" {
		data, err = getURL(ctx, client, rawURL)
	} else {
		src.Field, src.Value = "JWKSFile", file
		data, err = readFileLimited(file)
		err = withoutPath(err)
	}
	if err != nil {
		src.Err = err
		return nil, nil, src
	}
	keys, skipped, err := parseJWKS(data)
	if err != nil {
		src.Err = err
		return nil, nil, src
	}
	for i := range skipped {
		skipped[i] = src.Field + " " + src.Value + ": " + skipped[i]
	}
	return keys, skipped, nil
}

func getURL(ctx context.Context, client *http.Client, rawURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	return readLimited(resp.Body)
}

// withoutPath drops the path from a file error whose message is about
// to be prefixed with it ("open: no such file or directory").
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func readFileLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}

// quoteClip quotes an untrusted string for a message, cut to 64 bytes.
func quoteClip(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
