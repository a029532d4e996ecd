package admin

import (
	"io"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// TokenJSON is a token in -o json: its short id, never the token.
type TokenJSON struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Created     *time.Time `json:"created"`
	LastUsed    *time.Time `json:"last_used"`
	Expires     *time.Time `json:"expires"`
	Coordinator bool       `json:"coordinator"`
}

// Token is t in -o json.
func Token(t *fleet.TokenInfo) TokenJSON {
	return TokenJSON{ID: t.GetId(), Kind: t.GetKind(), Created: TimeOf(t.GetCreated()), LastUsed: TimeOf(t.GetLastUsed()),
		Expires: TimeOf(t.GetExpires()), Coordinator: t.GetCoordinator()}
}

// Tokens are tokens in -o json.
func Tokens(ts []*fleet.TokenInfo) []TokenJSON { return each(ts, Token) }

// TokensTable writes tokens as a table: ID KIND CREATED LAST-USED EXPIRES,
// times in local time and how long ago as of now. The coordinator's own
// tokens (its flags or data dir) say so in CREATED.
func TokensTable(w io.Writer, ts []*fleet.TokenInfo, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "KIND", "CREATED", "LAST-USED", "EXPIRES")
	for _, t := range ts {
		created := stamp(t.GetCreated(), now)
		if t.GetCoordinator() {
			created = "the coordinator's own"
		}
		expires := none
		if e := TimeOf(t.GetExpires()); e != nil {
			expires = e.Local().Format("2006-01-02 15:04:05 MST")
		}
		row(tw, t.GetId(), cell(t.GetKind()), created, stamp(t.GetLastUsed(), now), expires)
	}
	return tw.Flush()
}
