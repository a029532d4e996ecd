package view

import (
	"html/template"
	"strconv"
	"strings"
	"unicode/utf8"
)

// svgBuf assembles SVG markup without a temporary string per attribute:
// the pages draw a few hundred elements on every view.
type svgBuf struct{ b []byte }

// s writes markup as is.
func (w *svgBuf) s(markup string) *svgBuf { w.b = append(w.b, markup...); return w }

// t writes text, escaped for element content and quoted attributes.
func (w *svgBuf) t(text string) *svgBuf {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '<':
			w.b = append(w.b, "&lt;"...)
		case '>':
			w.b = append(w.b, "&gt;"...)
		case '&':
			w.b = append(w.b, "&amp;"...)
		case '"':
			w.b = append(w.b, "&#34;"...)
		case '\'':
			w.b = append(w.b, "&#39;"...)
		case 0:
			w.b = append(w.b, "\uFFFD"...)
		default:
			w.b = append(w.b, c)
		}
	}
	return w
}

// i writes an integer.
func (w *svgBuf) i(n int) *svgBuf { w.b = strconv.AppendInt(w.b, int64(n), 10); return w }

// f writes a coordinate with two decimals.
func (w *svgBuf) f(x float64) *svgBuf { w.b = strconv.AppendFloat(w.b, x, 'f', 2, 64); return w }

func (w *svgBuf) html() template.HTML { return template.HTML(w.b) }
