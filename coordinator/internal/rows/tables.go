package rows

// The tables a coordinator's state is in, as `monkeyci migrate` copies
// them between stores: in an order that inserts a row after the rows it
// refers to, each with its columns and their kinds, so that a value read
// from one database is written as the same value into the other (SQLite
// keeps booleans as integers, PostgreSQL as booleans).
//
// event_marks is not copied: each store's trigger makes it again as the
// events of an attempt are inserted in order.

// Kind is how a column's value is read and written.
type Kind int

// Kinds.
const (
	KindText     Kind = iota // string
	KindNullText             // *string
	KindInt                  // int64
	KindNullInt              // *int64
	KindBool                 // bool
	KindBytes                // []byte, nil for NULL
)

// Column is a column and its kind.
type Column struct {
	Name string
	Kind Kind
}

// Table is a table of the state: its name, its columns, and the columns
// that order it (its key).
type Table struct {
	Name    string
	Columns []Column
	Order   string
}

// Names is the table's column names, comma-separated.
func (t Table) Names() string {
	s := ""
	for i, c := range t.Columns {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}

// Holders are pointers to scan one row of the table into.
func (t Table) Holders() []any {
	out := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		switch c.Kind {
		case KindText:
			out[i] = new(string)
		case KindNullText:
			out[i] = new(*string)
		case KindInt:
			out[i] = new(int64)
		case KindNullInt:
			out[i] = new(*int64)
		case KindBool:
			out[i] = new(bool)
		case KindBytes:
			out[i] = new([]byte)
		}
	}
	return out
}

// Values are what holders point at, to write.
func Values(holders []any) []any {
	out := make([]any, len(holders))
	for i, h := range holders {
		switch h := h.(type) {
		case *string:
			out[i] = *h
		case **string:
			if *h != nil {
				out[i] = **h
			}
		case *int64:
			out[i] = *h
		case **int64:
			if *h != nil {
				out[i] = **h
			}
		case *bool:
			out[i] = *h
		case *[]byte:
			if *h != nil {
				out[i] = *h
			}
		}
	}
	return out
}

func cols(kind Kind, names ...string) []Column {
	out := make([]Column, len(names))
	for i, n := range names {
		out[i] = Column{n, kind}
	}
	return out
}

func join(parts ...[]Column) []Column {
	var out []Column
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Tables are the state's tables, in the order to copy them.
var Tables = []Table{
	{Name: "repos", Order: "name", Columns: join(cols(KindText, "name", "url"), cols(KindNullText, "branches"), cols(KindText, "forge", "api_url"),
		cols(KindBytes, "webhook_secret", "forge_token"), cols(KindInt, "created"), cols(KindBytes, "url_credential"), cols(KindText, "default_branch"), cols(KindNullInt, "depth"),
		cols(KindBool, "keep_superseded"), cols(KindInt, "max_running", "build_timeout", "priority"))},
	{Name: "secrets", Order: "repo, key", Columns: join(cols(KindText, "repo", "key"), cols(KindBytes, "value"), cols(KindInt, "updated"))},
	{Name: "builds", Order: "id", Columns: join(cols(KindText, "id", "repo", "source_url", "source_branch", "source_commit", "source_tag"),
		cols(KindNullText, "params", "labels"), cols(KindText, "state", "result", "message"), cols(KindInt, "attempt"), cols(KindText, "agent"),
		cols(KindInt, "lease_expires"), cols(KindText, "waiting"), cols(KindInt, "created", "started", "ended"), cols(KindText, "trigger_desc", "forge"),
		cols(KindNullText, "delivery"), cols(KindText, "event_key"), cols(KindNullText, "attempt_reasons"), cols(KindInt, "pull_request"),
		cols(KindText, "cache_scope", "cache_fallback"), cols(KindBool, "fork"), cols(KindInt, "priority"))},
	{Name: "events", Order: "build_id, attempt, seq", Columns: join(cols(KindText, "build_id"), cols(KindInt, "attempt", "seq"), cols(KindText, "event"))},
	{Name: "agents", Order: "id", Columns: join(cols(KindText, "id", "name"), cols(KindNullText, "labels"), cols(KindText, "credential_hash"),
		cols(KindBool, "cordoned"), cols(KindInt, "joined", "last_seen", "removed"))},
	{Name: "tokens", Order: "hash", Columns: join(cols(KindText, "hash", "id", "kind"), cols(KindInt, "created", "expires", "last_used"))},
	{Name: "pool_state", Order: "id", Columns: join(cols(KindInt, "id"), cols(KindText, "state"), cols(KindInt, "updated"))},
}
