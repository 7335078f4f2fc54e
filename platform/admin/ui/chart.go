package ui

import (
	"fmt"
	"math"
	"strings"

	"github.com/plba/plba/platform/control"
)

// chart is the throughput drawn as an SVG, server side: one polyline
// per series on a fixed 15-minute axis (now at the right edge).
type chart struct {
	W, H   int
	Series []series
	// Max is the value of the top of the axis (tasks per second).
	Max   string
	Empty bool
	// Last holds the latest rate of each series, for the legend.
	Points int
}

type series struct {
	Name   string
	Class  string // the CSS class that colours it
	Points string // the polyline's points
	Last   string
}

const (
	chartW = 600
	chartH = 160
)

// newChart scales tp's points into the chart: x by time over the
// window ending at the newest point, y by the highest rate of any series
// (rounded up to a "nice" number).
func newChart(tp control.Throughput) chart {
	c := chart{W: chartW, H: chartH, Points: len(tp.Points)}
	if len(tp.Points) == 0 {
		c.Empty, c.Max = true, "0"
		return c
	}
	top := 0.0
	for _, p := range tp.Points {
		top = max(top, p.EnqueuedPerSec, p.SucceededPerSec, p.FailedPerSec)
	}
	top = nice(top)
	c.Max = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", top), "0"), ".")
	end := tp.Points[len(tp.Points)-1].At
	start := end.Add(-control.ThroughputWindow)
	get := []struct {
		name, class string
		f           func(p control.ThroughputPoint) float64
	}{
		{"enqueued", "s-enq", func(p control.ThroughputPoint) float64 { return p.EnqueuedPerSec }},
		{"succeeded", "s-ok", func(p control.ThroughputPoint) float64 { return p.SucceededPerSec }},
		{"failed", "s-fail", func(p control.ThroughputPoint) float64 { return p.FailedPerSec }},
	}
	for _, g := range get {
		var b strings.Builder
		for _, p := range tp.Points {
			x := float64(chartW) * p.At.Sub(start).Seconds() / control.ThroughputWindow.Seconds()
			y := float64(chartH) * (1 - g.f(p)/top)
			fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
		}
		c.Series = append(c.Series, series{Name: g.name, Class: g.class, Points: strings.TrimSpace(b.String()),
			Last: fmt.Sprintf("%.2f", g.f(tp.Points[len(tp.Points)-1]))})
	}
	return c
}

// nice rounds f up to 1, 2 or 5 times a power of ten (at least 1).
func nice(f float64) float64 {
	if f <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(f)))
	for _, m := range []float64{1, 2, 5, 10} {
		if f <= m*p {
			return m * p
		}
	}
	return 10 * p
}
