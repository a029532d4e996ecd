package web

import (
	"fmt"
	"html/template"
	"net/url"
	"time"
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

// duration reads like 1h02m, 3m07s, 4.2s or 35ms.
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return ""
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
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
