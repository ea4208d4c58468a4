//! `rvs-bench --sweep`: how the cost of a packet grows with the work. The same
//! measurements as one run (I/O floor, lookup floor, established flows, new connections)
//! repeated for a list of session counts and worker counts, gathered into points, printed
//! as a table and drawn as an SVG plot (three panels: Mpps per worker against sessions,
//! cycles per packet against sessions, new sessions per second against table fill).

use std::fmt::Write as _;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::report::{Row, RunResult};

/// One (sessions, workers) point of the sweep. Rates are per worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Established sessions in the table (= flows of the capture).
    pub sessions: u64,
    /// Worker lcores.
    pub workers: usize,
    /// I/O floor, Mpps per worker.
    pub floor_mpps: Option<f64>,
    /// Lookup floor, Mpps per worker.
    pub lookup_mpps: Option<f64>,
    /// The engine on established flows, Mpps per worker.
    pub engine_mpps: Option<f64>,
    /// The engine's cycles per packet (rx, processing, tx and the loop).
    pub engine_cycles: Option<f64>,
    /// The I/O floor's cycles per packet.
    pub floor_cycles: Option<f64>,
    /// The lookup floor's cycles per packet.
    pub lookup_cycles: Option<f64>,
    /// New sessions per second per worker while creating this many sessions.
    pub new_sessions_per_sec: Option<f64>,
    /// The core clock before the established run, in GHz (cycles here are TSC cycles:
    /// see [`crate::clock`]).
    #[serde(default)]
    pub core_ghz: Option<f64>,
    /// New sessions per second against table fill (fraction of capacity, rate), mean
    /// over the workers.
    #[serde(default)]
    pub fill_rates: Vec<(f64, f64)>,
}

/// A whole sweep: what `--sweep --json` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sweep {
    /// Date (UTC).
    pub date: String,
    /// CPU model.
    pub cpu: String,
    /// Forwarding mode.
    pub mode: String,
    /// The command line.
    pub command: String,
    /// Points, by sessions then workers.
    pub points: Vec<Point>,
}

/// A line of a panel: its name and what it reads from a point.
type Line<'a> = (&'a str, &'a dyn Fn(&Point) -> Option<f64>);

fn per_worker(r: &Option<RunResult>) -> Option<f64> {
    r.as_ref()
        .map(RunResult::mpps_per_worker)
        .filter(|x| *x > 0.0)
}

fn cycles(r: &Option<RunResult>) -> Option<f64> {
    r.as_ref()
        .map(RunResult::cycles_per_packet)
        .filter(|x| *x > 0.0)
}

impl Point {
    /// The point of one run's row (one worker count) at `sessions`.
    pub fn of_row(sessions: u64, row: &Row) -> Point {
        let fill_rates = row
            .new_conn
            .as_ref()
            .map(mean_fill_rates)
            .unwrap_or_default();
        Point {
            sessions,
            workers: row.workers,
            floor_mpps: per_worker(&row.floor),
            lookup_mpps: per_worker(&row.lookup_floor),
            engine_mpps: per_worker(&row.established),
            engine_cycles: cycles(&row.established),
            floor_cycles: cycles(&row.floor),
            lookup_cycles: cycles(&row.lookup_floor),
            new_sessions_per_sec: row
                .new_conn
                .as_ref()
                .map(RunResult::sessions_per_sec_per_worker)
                .filter(|x| *x > 0.0),
            core_ghz: row
                .established
                .as_ref()
                .map(|e| e.core_hz / 1e9)
                .filter(|x| *x > 0.0),
            fill_rates,
        }
    }
}

/// The workers' fill-band rates, averaged band by band.
fn mean_fill_rates(r: &RunResult) -> Vec<(f64, f64)> {
    let n = r.per_worker.len().max(1) as f64;
    let bands = r
        .per_worker
        .iter()
        .map(|w| w.fill_rates.len())
        .min()
        .unwrap_or(0);
    (0..bands)
        .map(|i| {
            let (f, x) = r.per_worker.iter().fold((0.0, 0.0), |acc, w| {
                (acc.0 + w.fill_rates[i].0, acc.1 + w.fill_rates[i].1)
            });
            (f / n, x / n)
        })
        .collect()
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

impl Sweep {
    /// The human-readable table, one line per point.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "rvs-bench sweep {} on {}", self.date, self.cpu);
        let _ = writeln!(s, "command: {}", self.command);
        let _ = writeln!(s, "mode {}; Mpps and new sessions/s per worker", self.mode);
        let _ = writeln!(
            s,
            "{:>10} | {:>7} | {:>10} | {:>11} | {:>11} | {:>9} | {:>10} | {:>12} | {:>10} | {:>8}",
            "sessions",
            "workers",
            "floor Mpps",
            "lookup Mpps",
            "engine Mpps",
            "of lookup",
            "cycles/pkt",
            "compute cyc",
            "new sess/s",
            "core GHz"
        );
        let _ = writeln!(s, "{}", "-".repeat(124));
        for p in &self.points {
            let of_lookup = match (p.engine_mpps, p.lookup_mpps) {
                (Some(e), Some(l)) if l > 0.0 => Some(e / l),
                _ => None,
            };
            let compute = match (p.engine_cycles, p.floor_cycles) {
                (Some(e), Some(f)) => Some(e - f),
                _ => None,
            };
            let _ = writeln!(
                s,
                "{:>10} | {:>7} | {:>10} | {:>11} | {:>11} | {:>9} | {:>10} | {:>12} | {:>10} | {:>8}",
                p.sessions,
                p.workers,
                opt(p.floor_mpps, 2),
                opt(p.lookup_mpps, 2),
                opt(p.engine_mpps, 2),
                opt(of_lookup, 2),
                opt(p.engine_cycles, 0),
                opt(compute, 0),
                opt(p.new_sessions_per_sec, 0),
                opt(p.core_ghz, 2),
            );
        }
        let _ = writeln!(
            s,
            "(compute cyc = engine cycles/pkt minus the I/O floor's, same sessions and workers; \
             cycles are TSC cycles; core GHz = the core clock measured before the established run)"
        );
        s
    }

    /// The plot, as an SVG document.
    pub fn svg(&self) -> Result<String, String> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (900, 1600)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let title = format!(
                "rvs {} — {} — {}",
                self.mode.to_uppercase(),
                self.cpu,
                self.date
            );
            let root = root
                .titled(&title, ("sans-serif", 20))
                .map_err(|e| e.to_string())?;
            let panels = root.split_evenly((4, 1));
            // (caption, y axis, lines, where the legend goes): the established packets'
            // Mpps and cycles, then new sessions against the sessions each point's run
            // made, its legend below the points (highest at the small counts).
            let lined: [(&str, &str, &[Line<'_>], SeriesLabelPosition); 3] = [
                (
                    "established packets: engine and floors",
                    "Mpps per worker",
                    &[
                        ("I/O floor", &|p: &Point| p.floor_mpps),
                        ("lookup floor", &|p: &Point| p.lookup_mpps),
                        ("engine", &|p: &Point| p.engine_mpps),
                    ],
                    SeriesLabelPosition::UpperMiddle,
                ),
                (
                    "cycles per packet",
                    "TSC cycles per packet",
                    &[
                        ("engine", &|p: &Point| p.engine_cycles),
                        ("lookup floor", &|p: &Point| p.lookup_cycles),
                        ("I/O floor", &|p: &Point| p.floor_cycles),
                    ],
                    SeriesLabelPosition::UpperMiddle,
                ),
                (
                    "new sessions per second against the sessions made",
                    "M new sessions/s per worker",
                    &[("new sessions", &|p: &Point| {
                        p.new_sessions_per_sec.map(|x| x / 1e6)
                    })],
                    SeriesLabelPosition::LowerMiddle,
                ),
            ];
            for (area, (caption, y_desc, lines, legend)) in panels.iter().zip(lined) {
                self.draw_lines(area, caption, y_desc, lines, legend)?;
            }
            self.draw_fill(&panels[3])?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    fn workers(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.points.iter().map(|p| p.workers).collect();
        w.sort_unstable();
        w.dedup();
        w
    }

    fn sessions_range(&self) -> (f64, f64) {
        let lo = self
            .points
            .iter()
            .map(|p| p.sessions.max(1) as f64)
            .fold(f64::INFINITY, f64::min);
        let hi = self
            .points
            .iter()
            .map(|p| p.sessions.max(1) as f64)
            .fold(1.0, f64::max);
        if lo.is_finite() && hi > lo {
            (lo, hi * 1.5)
        } else {
            (1.0, 10.0)
        }
    }

    fn series(&self, w: usize, f: impl Fn(&Point) -> Option<f64>) -> Vec<(f64, f64)> {
        self.points
            .iter()
            .filter(|p| p.workers == w)
            .filter_map(|p| f(p).map(|y| (p.sessions.max(1) as f64, y)))
            .collect()
    }

    fn draw_lines<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        caption: &str,
        y_desc: &str,
        lines: &[Line<'_>],
        legend: SeriesLabelPosition,
    ) -> Result<(), String> {
        let (lo, hi) = self.sessions_range();
        let mut ymax: f64 = 1.0;
        for w in self.workers() {
            for (_, f) in lines {
                for (_, y) in self.series(w, f) {
                    ymax = ymax.max(y);
                }
            }
        }
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..ymax * 1.15)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("sessions in the table")
            .y_desc(y_desc)
            .x_label_formatter(&|x| human(*x))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, w) in self.workers().into_iter().enumerate() {
            // One colour per line (the same in every panel); the first worker count
            // drawn bold with dots, the next ones thinner with triangles.
            let width = if k == 0 { 2 } else { 1 };
            for (name, f) in lines {
                let colour = colour_of(name);
                let pts = self.series(w, f);
                if pts.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(width)))
                    .map_err(|e| e.to_string())?
                    .label(format!("{name}, {w} worker(s)"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(width))
                    });
                if k == 0 {
                    chart
                        .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                        .map_err(|e| e.to_string())?;
                } else {
                    chart
                        .draw_series(
                            pts.into_iter()
                                .map(|p| TriangleMarker::new(p, 4, colour.filled())),
                        )
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn draw_fill<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        // The largest new-connection run of each worker count: its rate by fill band.
        // (workers, sessions created, (fill %, M sessions/s) per band)
        type FillLine = (usize, u64, Vec<(f64, f64)>);
        let mut lines: Vec<FillLine> = Vec::new();
        for w in self.workers() {
            if let Some(p) = self
                .points
                .iter()
                .filter(|p| p.workers == w && !p.fill_rates.is_empty())
                .max_by_key(|p| p.sessions)
            {
                let pts = p
                    .fill_rates
                    .iter()
                    .map(|(f, r)| (f * 100.0, r / 1e6))
                    .collect();
                lines.push((w, p.sessions, pts));
            }
        }
        let ymax = lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(
                "new sessions per second against table fill",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..100.0, 0.0..ymax * 1.15)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("session table fill, % of capacity")
            .y_desc("M new sessions/s per worker")
            .draw()
            .map_err(|e| e.to_string())?;
        let colours = [RED, BLUE, GREEN, MAGENTA];
        let any = !lines.is_empty();
        for (i, (w, n, pts)) in lines.into_iter().enumerate() {
            let colour = colours[i % colours.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(format!("{w} worker(s), {} new sessions", human(n as f64)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        if any {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The colour of a line, by its name, in every panel.
fn colour_of(name: &str) -> RGBColor {
    match name {
        "engine" => RED,
        "lookup floor" => BLUE,
        "new sessions" => RGBColor(0, 140, 0),
        _ => RGBColor(90, 90, 90),
    }
}

/// 1, 1k, 10k, 1M, 10M.
fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", (x / 1e6).round())
    } else if x >= 1e3 {
        format!("{}k", (x / 1e3).round())
    } else {
        format!("{}", x.round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep() -> Sweep {
        let mut points = Vec::new();
        for (i, n) in [1u64, 1000, 1_000_000].into_iter().enumerate() {
            for w in [1usize, 2] {
                points.push(Point {
                    sessions: n,
                    workers: w,
                    floor_mpps: Some(40.0),
                    lookup_mpps: Some(30.0 - i as f64 * 5.0),
                    engine_mpps: Some(18.0 - i as f64 * 4.0),
                    engine_cycles: Some(140.0 + i as f64 * 40.0),
                    floor_cycles: Some(60.0),
                    lookup_cycles: Some(80.0 + i as f64 * 20.0),
                    new_sessions_per_sec: Some(4e6),
                    core_ghz: Some(3.5),
                    fill_rates: vec![(0.15, 4.2e6), (0.4, 4.0e6), (0.6, 3.9e6), (0.8, 3.7e6)],
                });
            }
        }
        Sweep {
            date: "2026-12-06".into(),
            cpu: "Test CPU".into(),
            mode: "fullnat".into(),
            command: "rvs-bench --sweep".into(),
            points,
        }
    }

    #[test]
    fn the_table_shows_compute_cycles_and_the_share_of_the_lookup_floor() {
        let t = sweep().table();
        // 1M sessions, 1 worker: 10 / 20 of the lookup floor, 220 - 60 cycles of compute.
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with("1000000 |") && l.contains("|       1 |"))
            .expect("the 1M, 1 worker line");
        assert!(line.contains("0.50"), "{line}");
        assert!(line.contains("160"), "{line}");
    }

    #[test]
    fn the_table_gives_each_points_core_clock() {
        let t = sweep().table();
        assert!(t.contains("core GHz"), "{t}");
        assert!(
            t.lines().filter(|l| l.ends_with("|     3.50")).count() == 6,
            "{t}"
        );
    }

    #[test]
    fn the_plot_is_an_svg_with_every_series() {
        let svg = sweep().svg().expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for label in [
            "engine, 1 worker(s)",
            "lookup floor, 2 worker(s)",
            "I/O floor, 1 worker(s)",
            "1 worker(s), 1M new sessions",
            "new sessions, 2 worker(s)",
            "new sessions per second against the sessions made",
            "Test CPU",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        // Every point is drawn: 3 sessions × (3 lines × 2 panels + the new sessions'
        // line) for each worker count (dots for 1 worker, triangles for 2), plus the 4
        // fill bands × 2 workers.
        assert!(svg.matches("<circle").count() >= 3 * 7 + 8);
        assert!(svg.matches("<polygon").count() >= 3 * 7);
    }
}
