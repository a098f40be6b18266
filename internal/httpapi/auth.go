package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Tokens are the bearer tokens the API accepts. The zero value (or nil)
// holds none: the API then asks for no token and every execution belongs
// to the owner "".
type Tokens struct {
	sums [][sha256.Size]byte
}

// ParseTokens reads tokens one per line; blank lines and lines starting
// with # are ignored, and so is the space around a token.
func ParseTokens(text string) *Tokens {
	t := &Tokens{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t.Add(line)
	}
	return t
}

// LoadTokens reads the tokens of file (as ParseTokens does) and of env, a
// comma-separated list (EXECQ_API_TOKENS); either may be empty.
func LoadTokens(file, env string) (*Tokens, error) {
	t := &Tokens{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read api tokens: %w", err)
		}
		t = ParseTokens(string(b))
	}
	for _, tok := range strings.Split(env, ",") {
		if tok = strings.TrimSpace(tok); tok != "" {
			t.Add(tok)
		}
	}
	return t, nil
}

// Add accepts one more token.
func (t *Tokens) Add(token string) { t.sums = append(t.sums, sha256.Sum256([]byte(token))) }

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.sums)
}

// Owner is the owner ID of executions submitted with token: the first 16
// hex digits of its SHA-256. It names the token without revealing it.
func Owner(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// authenticate returns the owner of the request's bearer token, and false
// when the token is missing or not one of t. Every token is compared, in
// constant time, whichever matches.
func (t *Tokens) authenticate(r *http.Request) (string, bool) {
	if t.Len() == 0 {
		return "", true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	sum := sha256.Sum256([]byte(token))
	match := 0
	for _, s := range t.sums {
		match |= subtle.ConstantTimeCompare(sum[:], s[:])
	}
	if match != 1 {
		return "", false
	}
	return Owner(token), true
}
