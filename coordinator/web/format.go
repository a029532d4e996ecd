package web

import (
	"fmt"
	"html/template"
	"net/url"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/web/view"
)

// funcs are the templates' helpers: how times, sizes and amounts read.
var funcs = template.FuncMap{
	"dur":   duration,
	"when":  when,
	"short": short,
	"cpus":  cpus,
	"bytes": byteSize,
	"pct":   func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"path":  url.PathEscape,
	"deref": func(p *int) int { return *p },
	"unixms": func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	},
}

// duration is view.FormatDuration's ("35ms", "4.2s", "3m07s", "1h02m"), and
// nothing for a negative one (clocks that disagree).
func duration(d time.Duration) string {
	if d < 0 {
		return ""
	}
	return view.FormatDuration(d)
}

// when is a time in UTC, to the second ("" for none).
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// short is a commit's first 10 characters.
func short(commit string) string {
	if len(commit) > 10 {
		return commit[:10]
	}
	return commit
}

func cpus(milli int64) string { return fmt.Sprintf("%.1f", float64(milli)/1000) }

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i-1])
}
