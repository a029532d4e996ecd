package coordinator

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Every presented token is looked up in the store on each call (or
// each dashboard request), so revoking one refuses it at once: no cache
// to wait out.

// usedEvery bounds how often a token's last use is written: a busy
// token costs one write a minute, not one a call.
const usedEvery = time.Minute

// tokenUses remembers when each token's use was last written.
type tokenUses struct {
	mu      sync.Mutex
	written map[string]time.Time
}

// due says whether the use of the token with hash at now is to be
// written, and notes it as written if so.
func (u *tokenUses) due(hash string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if last, ok := u.written[hash]; ok && now.Sub(last) < usedEvery {
		return false
	}
	if u.written == nil {
		u.written = map[string]time.Time{}
	}
	u.written[hash] = now
	return true
}

func (u *tokenUses) forget(hash string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.written, hash)
}

// CheckToken returns what a presented token is: the coordinator's own
// admin token, or a made one neither revoked nor expired (ErrNotFound
// otherwise). A made token's use is recorded.
func (c *Coordinator) CheckToken(ctx context.Context, token string) (Token, error) {
	if token == "" {
		return Token{}, fmt.Errorf("empty token: %w", ErrNotFound)
	}
	if c.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(c.cfg.AdminToken)) == 1 {
		return Token{Hash: hashToken(token), Kind: TokenAdmin}, nil
	}
	t, err := c.cfg.Store.GetToken(ctx, hashToken(token))
	if err != nil {
		return Token{}, err
	}
	now := c.cfg.Now()
	if t.Expired(now) {
		return Token{}, fmt.Errorf("token %s expired at %s: %w", t.ID(), t.Expires.UTC().Format(time.RFC3339), ErrNotFound)
	}
	if c.uses.due(t.Hash, now) {
		if err := c.cfg.Store.TokenUsed(ctx, t.Hash, now); err != nil {
			c.log.Warn("recording a token's use", "token", t.ID(), "error", err)
		}
	}
	return t, nil
}

// TokenLive says what the token of that short id lets its bearer do, while
// it is neither revoked nor expired ("" otherwise): a dashboard session
// lives as long as the token it was opened with.
func (c *Coordinator) TokenLive(ctx context.Context, id string) TokenKind {
	if len(id) != TokenIDLen {
		return ""
	}
	if c.cfg.AdminToken != "" && (Token{Hash: hashToken(c.cfg.AdminToken)}).ID() == id {
		return TokenAdmin
	}
	ts, err := c.cfg.Store.TokensByID(ctx, id)
	if err != nil {
		c.log.Warn("checking a session's token", "token", id, "error", err)
		return ""
	}
	for _, t := range ts {
		if t.ID() == id && !t.Expired(c.cfg.Now()) {
			return t.Kind
		}
	}
	return ""
}

// TokenKind says what a token lets its bearer do (ErrNotFound for an
// unknown, revoked or expired one).
func (c *Coordinator) TokenKind(ctx context.Context, token string) (TokenKind, error) {
	t, err := c.CheckToken(ctx, token)
	return t.Kind, err
}

// ownTokens are the coordinator's own tokens (flags or data dir), listed
// beside the made ones.
func (c *Coordinator) ownTokens() []*fleet.TokenInfo {
	var own []*fleet.TokenInfo
	for _, t := range []struct {
		token string
		kind  TokenKind
	}{{c.cfg.AdminToken, TokenAdmin}, {c.cfg.JoinToken, TokenAgent}} {
		if t.token != "" {
			own = append(own, &fleet.TokenInfo{Id: Token{Hash: hashToken(t.token)}.ID(), Kind: string(t.kind), Coordinator: true})
		}
	}
	return own
}

func tokenInfo(t Token) *fleet.TokenInfo {
	info := &fleet.TokenInfo{Id: t.ID(), Kind: string(t.Kind), Created: timestamppb.New(t.Created)}
	if !t.LastUsed.IsZero() {
		info.LastUsed = timestamppb.New(t.LastUsed)
	}
	if !t.Expires.IsZero() {
		info.Expires = timestamppb.New(t.Expires)
	}
	return info
}

func (s *AdminServer) CreateToken(ctx context.Context, r *fleet.CreateTokenRequest) (*fleet.CreateTokenResponse, error) {
	kind := TokenKind(r.GetKind())
	switch kind {
	case TokenAdmin, TokenAgent, TokenViewer:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "token kind %q: say agent, admin or viewer", r.GetKind())
	}
	if r.GetTtlSeconds() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "a token's ttl must be positive, not %ds", r.GetTtlSeconds())
	}
	token := NewID() + NewID()
	t := Token{Hash: hashToken(token), Kind: kind}
	if ttl := r.GetTtlSeconds(); ttl > 0 {
		t.Expires = s.c.cfg.Now().Add(time.Duration(ttl) * time.Second)
	}
	if err := s.c.cfg.Store.SaveToken(ctx, t); err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.CreateTokenResponse{Token: token, Kind: string(kind), Id: t.ID()}
	if !t.Expires.IsZero() {
		resp.Expires = timestamppb.New(t.Expires)
	}
	return resp, nil
}

func (s *AdminServer) ListTokens(ctx context.Context, _ *fleet.ListTokensRequest) (*fleet.ListTokensResponse, error) {
	ts, err := s.c.cfg.Store.ListTokens(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.ListTokensResponse{Tokens: s.c.ownTokens()}
	for _, t := range ts {
		resp.Tokens = append(resp.Tokens, tokenInfo(t))
	}
	return resp, nil
}

func (s *AdminServer) RevokeToken(ctx context.Context, r *fleet.TokenRef) (*fleet.TokenInfo, error) {
	id := strings.ToLower(r.GetId())
	if len(id) < 4 || len(id) > TokenIDLen {
		return nil, status.Errorf(codes.InvalidArgument, "token id %q: give the id 'tokens ls' shows (%d hex digits, or at least 4 of its first)", r.GetId(), TokenIDLen)
	}
	for _, own := range s.c.ownTokens() {
		if strings.HasPrefix(own.GetId(), id) {
			return nil, status.Errorf(codes.FailedPrecondition, "token %s is the coordinator's own %s token: restart the coordinator with another (its flag, or remove tokens.json from its data dir)", own.GetId(), own.GetKind())
		}
	}
	ts, err := s.c.cfg.Store.TokensByID(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	switch len(ts) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "token %q: not found", r.GetId())
	case 1:
	default:
		ids := make([]string, len(ts))
		for i, t := range ts {
			ids[i] = t.ID()
		}
		return nil, status.Errorf(codes.FailedPrecondition, "token %q could be %s: give more of its id", r.GetId(), strings.Join(slices.Compact(ids), " or "))
	}
	if err := s.c.cfg.Store.RevokeToken(ctx, ts[0].Hash); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, storeError(err)
	}
	s.c.uses.forget(ts[0].Hash)
	s.c.revocations.notify()
	s.c.log.Info("token revoked", "token", ts[0].ID(), "kind", ts[0].Kind)
	return tokenInfo(ts[0]), nil
}
