package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/frayhq/fray/internal/clusterview"
	"github.com/frayhq/fray/internal/jobwire"
)

var funcs = template.FuncMap{
	"ago":       ago,
	"when":      when,
	"span":      span,
	"state":     stateClass,
	"sparkline": sparkline,
	"bytes":     jobwire.FormatBytes,
	"jobURL":    jobURL,
	"join":      strings.Join,
	"rate":      func(r float64) string { return fmt.Sprintf("%.1f", r) },
	"pct": func(n, d int) int {
		if d <= 0 {
			return 0
		}
		return min(100, n*100/d)
	},
	"add": func(a, b int) int { return a + b },
}

// ago is how long before now unix ms was, briefly ("12s ago").
func ago(ms int64) string {
	if ms <= 0 {
		return "—"
	}
	return short(time.Since(time.UnixMilli(ms))) + " ago"
}

// when is unix ms as a UTC time, for a title attribute.
func when(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC")
}

// span is the time from a to b (to now when b is 0), briefly.
func span(a, b int64) string {
	if a <= 0 {
		return "—"
	}
	end := time.Now()
	if b > 0 {
		end = time.UnixMilli(b)
	}
	return short(end.Sub(time.UnixMilli(a)))
}

func short(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// stateClass is the CSS class of a job, task or actor state.
func stateClass(s any) string {
	switch strings.ToLower(fmt.Sprint(s)) {
	case "running", "ready":
		return "st st-run"
	case "succeeded":
		return "st st-ok"
	case "failed", "dead":
		return "st st-bad"
	case "stopped":
		return "st st-off"
	case "pending", "assigned", "placing", "restarting":
		return "st st-wait"
	}
	return "st"
}

// sparkline draws a pool's recent queued+running (area) and delivery rate
// (line) as an inline SVG.
func sparkline(h []clusterview.Point) template.HTML {
	const w, ht = 160.0, 32.0
	if len(h) < 2 {
		return template.HTML(fmt.Sprintf(`<svg class="spark" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="not enough history yet"><line x1="0" y1="%g" x2="%g" y2="%g" class="spark-base"/></svg>`, w, ht, w, ht, ht-1, w, ht-1))
	}
	maxLoad, maxRate := 1.0, 1.0
	for _, p := range h {
		maxLoad = math.Max(maxLoad, float64(p.Queued)+float64(p.Running))
		maxRate = math.Max(maxRate, p.Rate)
	}
	x := func(i int) float64 { return float64(i) * w / float64(len(h)-1) }
	var area, line strings.Builder
	fmt.Fprintf(&area, "M0,%g", ht)
	for i, p := range h {
		fmt.Fprintf(&area, " L%.1f,%.1f", x(i), ht-1-(ht-2)*(float64(p.Queued)+float64(p.Running))/maxLoad)
		if i == 0 {
			line.WriteString("M")
		} else {
			line.WriteString(" L")
		}
		fmt.Fprintf(&line, "%.1f,%.1f", x(i), ht-1-(ht-2)*p.Rate/maxRate)
	}
	fmt.Fprintf(&area, " L%g,%g Z", w, ht)
	last := h[len(h)-1]
	label := fmt.Sprintf("last %s: now %d queued, %d running, %.1f tasks/s", short(time.Duration(h[len(h)-1].UnixMS-h[0].UnixMS)*time.Millisecond), last.Queued, last.Running, last.Rate)
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title><path d="%s" class="spark-load"/><path d="%s" class="spark-rate"/></svg>`,
		w, ht, w, ht, template.HTMLEscapeString(label), template.HTMLEscapeString(label), area.String(), line.String()))
}
