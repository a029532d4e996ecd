package source

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Redact hides the credentials of a URL (scheme://user:password@host/...
// becomes scheme://***@host/...), for logs and error messages.
func Redact(u string) string {
	start, end, ok := userinfo(u)
	if !ok {
		return u
	}
	return u[:start] + "***" + u[end:]
}

// stripCredentials removes a URL's user information altogether.
func stripCredentials(u string) string {
	start, end, ok := userinfo(u)
	if !ok {
		return u
	}
	return u[:start] + u[end+1:]
}

// userinfo locates the user information of a scheme://userinfo@host URL:
// u[start:end] is the userinfo and u[end] the '@'.
func userinfo(u string) (start, end int, ok bool) {
	i := strings.Index(u, "://")
	if i < 0 {
		return 0, 0, false
	}
	start = i + 3
	authority := u[start:]
	if j := strings.IndexAny(authority, "/?#"); j >= 0 {
		authority = authority[:j]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return 0, 0, false
	}
	// A lone user name is a token over http(s) (https://TOKEN@host/...);
	// elsewhere (ssh://git@host/...) it is only a name.
	scheme := strings.ToLower(u[:i])
	if !strings.Contains(authority[:at], ":") && scheme != "http" && scheme != "https" {
		return 0, 0, false
	}
	return start, start + at, true
}

// SplitCredentials parts a scheme://userinfo@host/... URL into the URL
// without its user information and that information ("" when it has none),
// so that each can be kept apart: the one shown, the other sealed.
func SplitCredentials(u string) (bare, info string) {
	start, end, ok := userinfo(u)
	if !ok || start == end {
		return u, "" // none, or an empty one: nothing to keep apart
	}
	return u[:start] + u[end+1:], u[start:end]
}

// WithCredentials puts user information split off by SplitCredentials back
// into bare, for fetching.
func WithCredentials(bare, info string) string {
	i := strings.Index(bare, "://")
	if info == "" || i < 0 {
		return bare
	}
	return bare[:i+3] + info + "@" + bare[i+3:]
}

// Credentials are the forms in which the credentials of u may be printed
// (by a transport, a server's answer, a program's output): the whole user
// information, the password, a lone user name (often a token:
// https://TOKEN@host/...), escaped and not, and the HTTP basic
// authorization they make (base64 of user:password), which a server may
// repeat. None when u has none.
func Credentials(u string) []string {
	start, end, ok := userinfo(u)
	if !ok {
		return nil
	}
	info := u[start:end]
	forms := []string{info}
	user, pass, hasPass := strings.Cut(info, ":")
	if hasPass {
		forms = append(forms, pass, unescape(pass))
	} else {
		forms = append(forms, user, unescape(user))
	}
	forms = append(forms, base64.StdEncoding.EncodeToString([]byte(unescape(user)+":"+unescape(pass))))
	var out []string
	for _, f := range forms {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// scrub removes raw's credentials from msg, in whatever form the transport
// may have printed them.
func scrub(msg, raw string) string {
	for _, s := range Credentials(raw) {
		msg = strings.ReplaceAll(msg, s, "***")
	}
	return msg
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
