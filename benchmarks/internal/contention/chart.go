package contention

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteCharts draws two pictures of results, the runs of one invocation,
// into files named prefix+"-goodput.png" and prefix+"-latency.png":
//
//   - goodput over time, per strategy: the transfers committed in each
//     Bucket of the window of its first round, as transactions per second;
//   - the latency distribution, per strategy, over all its rounds: for each
//     latency, the fraction of committed transfers that took longer, on
//     log scales, so that the tail is as visible as the median, with the
//     goal's p99 and max bounds marked.
func WriteCharts(prefix, title string, results []Result) error {
	var names []string
	byName := map[string][]Result{}
	for _, r := range results {
		if _, ok := byName[r.Strategy]; !ok {
			names = append(names, r.Strategy)
		}
		byName[r.Strategy] = append(byName[r.Strategy], r)
	}

	gp := plot.New()
	gp.Title.Text = title + ": goodput over time (first round)"
	gp.X.Label.Text = "time (s)"
	gp.Y.Label.Text = "committed transfers per second"
	gp.Y.Min = 0
	gp.Legend.Top = true
	for i, name := range names {
		r := byName[name][0]
		pts := make(plotter.XYs, len(r.Series))
		for j, n := range r.Series {
			pts[j].X = (float64(j) + 0.5) * Bucket.Seconds()
			pts[j].Y = float64(n) / Bucket.Seconds()
		}
		if err := addLine(gp, name, pts, i); err != nil {
			return err
		}
	}
	if err := gp.Save(24*vg.Centimeter, 12*vg.Centimeter, prefix+"-goodput.png"); err != nil {
		return err
	}

	lp := plot.New()
	lp.Title.Text = title + ": latency distribution (all rounds)"
	lp.X.Label.Text = "latency of a committed transfer (ms, log)"
	lp.Y.Label.Text = "fraction of transfers slower (log)"
	lp.X.Scale, lp.Y.Scale = plot.LogScale{}, plot.LogScale{}
	lp.X.Tick.Marker, lp.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	lp.Legend.Top = true
	floor := 1.0
	for i, name := range names {
		var lat []time.Duration
		for _, r := range byName[name] {
			lat = append(lat, r.Latencies...)
		}
		slices.Sort(lat)
		pts := ccdf(lat)
		if len(pts) == 0 {
			continue
		}
		floor = min(floor, pts[len(pts)-1].Y)
		if err := addLine(lp, name, pts, i); err != nil {
			return err
		}
	}
	lp.Y.Min = floor
	lp.Y.Max = 1
	for _, bound := range []struct {
		d     time.Duration
		label string
	}{{SlowThreshold, "p99 goal"}, {MaxThreshold, "max goal"}} {
		x := float64(bound.d) / float64(time.Millisecond)
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: floor}, {X: x, Y: 1}})
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 120}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		lp.Add(l)
		lp.Legend.Add(fmt.Sprintf("%s (%v)", bound.label, bound.d), l)
	}
	return lp.Save(24*vg.Centimeter, 12*vg.Centimeter, prefix+"-latency.png")
}

func addLine(p *plot.Plot, name string, pts plotter.XYs, i int) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
	l.Width = vg.Points(1.2)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// ccdf returns, for sorted latencies, points (latency in ms, fraction of
// transfers at least that slow), thinned to the points that move either
// coordinate by more than 1 % on its log scale; the fastest and slowest are
// always kept.
func ccdf(sorted []time.Duration) plotter.XYs {
	n := len(sorted)
	var pts plotter.XYs
	for i, d := range sorted {
		pt := plotter.XY{X: math.Max(float64(d)/float64(time.Millisecond), 0.001), Y: float64(n-i) / float64(n)}
		if len(pts) > 0 && i != n-1 {
			prev := pts[len(pts)-1]
			if math.Log10(pt.X/prev.X) < 0.01 && math.Log10(prev.Y/pt.Y) < 0.01 {
				continue
			}
		}
		pts = append(pts, pt)
	}
	return pts
}
