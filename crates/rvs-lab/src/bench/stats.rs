//! Summaries of repeated measurements (median, min, max), ratios and the Markdown result table.

use std::fmt::Write as _;

/// Median, minimum and maximum of a set of samples (rounds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many samples went into it.
    pub n: usize,
}

impl Summary {
    /// `None` for an empty set or one holding a NaN.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `self.median / base.median`, `None` when the base is zero.
    pub fn ratio_to(&self, base: &Summary) -> Option<f64> {
        (base.median != 0.0).then(|| self.median / base.median)
    }
}

/// How a metric is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Operations per second (requests/s, connections/s, packets/s): "45.2k".
    PerSecond,
    /// Bits per second: "9.41 Gbit/s".
    BitsPerSecond,
    /// Seconds, printed as µs/ms: "312 µs".
    Seconds,
}

/// Formats a value in `unit`, short and with three significant digits.
pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSecond => {
            if v >= 1e6 {
                format!("{}M", sig3(v / 1e6))
            } else if v >= 1e3 {
                format!("{}k", sig3(v / 1e3))
            } else {
                sig3(v)
            }
        }
        Unit::BitsPerSecond => {
            if v >= 1e9 {
                format!("{} Gbit/s", sig3(v / 1e9))
            } else {
                format!("{} Mbit/s", sig3(v / 1e6))
            }
        }
        Unit::Seconds => {
            if v >= 1.0 {
                format!("{} s", sig3(v))
            } else if v >= 1e-3 {
                format!("{} ms", sig3(v * 1e3))
            } else {
                format!("{} µs", sig3(v * 1e6))
            }
        }
    }
}

/// Three significant digits, no exponent: 123, 12.3, 1.23, 0.123.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One cell: "median (min–max)" or the reason there is no figure.
pub fn format_cell(s: Option<&Summary>, unit: Unit, missing: &str) -> String {
    match s {
        Some(s) => format!(
            "{} ({}–{})",
            format_value(s.median, unit),
            format_value(s.min, unit),
            format_value(s.max, unit)
        ),
        None => missing.to_string(),
    }
}

/// A ratio cell: "1.02x".
pub fn format_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}x"),
        None => "–".to_string(),
    }
}

/// One row of the result table: a metric measured on every path.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub unit: Unit,
    /// Lower is better (latency, CPU cost): the ratio is still value/base, the reader is told which way is good.
    pub lower_is_better: bool,
    /// One entry per path, in column order; `Err(reason)` when there is no figure.
    pub cells: Vec<Result<Summary, String>>,
}

/// A Markdown table with one column per path and, under each figure, its ratio to the base path's figure.
pub fn markdown_table(paths: &[&str], base: usize, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = write!(out, "| metric |");
    for p in paths {
        let _ = write!(out, " {p} |");
    }
    out.push('\n');
    out.push_str("|---|");
    for _ in paths {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        let arrow = if row.lower_is_better {
            " (lower is better)"
        } else {
            ""
        };
        let _ = write!(out, "| {}{arrow} |", row.metric);
        let base_summary = row.cells.get(base).and_then(|c| c.as_ref().ok());
        for (i, cell) in row.cells.iter().enumerate() {
            match cell {
                Ok(s) => {
                    let value = format_cell(Some(s), row.unit, "");
                    if i == base {
                        let _ = write!(out, " {value} (1.00x) |");
                    } else {
                        let r = base_summary.and_then(|b| s.ratio_to(b));
                        let _ = write!(out, " {value} ({}) |", format_ratio(r));
                    }
                }
                Err(why) => {
                    let _ = write!(out, " {why} |");
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn summary_odd_and_even() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn ratio() {
        let a = Summary::of(&[10.0]).unwrap();
        let b = Summary::of(&[20.0]).unwrap();
        assert_eq!(b.ratio_to(&a), Some(2.0));
        let z = Summary::of(&[0.0]).unwrap();
        assert_eq!(a.ratio_to(&z), None);
    }

    #[test]
    fn values() {
        assert_eq!(format_value(45_231.0, Unit::PerSecond), "45.2k");
        assert_eq!(format_value(1_234_567.0, Unit::PerSecond), "1.23M");
        assert_eq!(format_value(950.0, Unit::PerSecond), "950");
        assert_eq!(format_value(9.414e9, Unit::BitsPerSecond), "9.41 Gbit/s");
        assert_eq!(format_value(312.4e6, Unit::BitsPerSecond), "312 Mbit/s");
        assert_eq!(format_value(312e-6, Unit::Seconds), "312 µs");
        assert_eq!(format_value(1.5e-3, Unit::Seconds), "1.50 ms");
        assert_eq!(format_ratio(Some(1.0 / 3.0)), "0.33x");
        assert_eq!(format_ratio(None), "–");
    }

    #[test]
    fn table_has_ratios_to_base_and_reasons() {
        let rows = vec![Row {
            metric: "keep-alive req/s".into(),
            unit: Unit::PerSecond,
            lower_is_better: false,
            cells: vec![
                Ok(Summary::of(&[20_000.0, 19_000.0, 21_000.0]).unwrap()),
                Ok(Summary::of(&[10_000.0, 9_000.0, 11_000.0]).unwrap()),
                Err("n/a".into()),
            ],
        }];
        let t = markdown_table(&["direct", "kernel NAT", "haproxy"], 1, &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| metric | direct | kernel NAT | haproxy |");
        assert_eq!(lines[1], "|---|---|---|---|");
        assert_eq!(
            lines[2],
            "| keep-alive req/s | 20.0k (19.0k–21.0k) (2.00x) | 10.0k (9.00k–11.0k) (1.00x) | n/a |"
        );
    }
}
