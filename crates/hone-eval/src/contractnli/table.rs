//! Result tables built once and shown three ways: Markdown and HTML (the reports) and aligned
//! plain text (the terminal), so `hone eval contractnli` prints the numbers the reports hold.

use std::fmt::Write as _;

/// One cell: text as it is, or a number shown with `digits` decimals (`None` or not finite:
/// undefined, shown as a dash).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Num(Option<f64>, usize),
}

impl Cell {
    /// The number in the cell, if it is one and defined (what "best" compares).
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Num(v, _) => v.filter(|x| x.is_finite()),
            Cell::Text(_) => None,
        }
    }

    /// The cell's text, with `dash` for an undefined number.
    pub fn show(&self, dash: &str) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Num(v, digits) => match v {
                Some(x) if x.is_finite() => format!("{x:.digits$}"),
                _ => dash.into(),
            },
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

/// The dash of an undefined number in the reports (the terminal uses `-`).
pub const REPORT_DASH: &str = "–";

/// A table: a header, rows of cells, which leading columns are names (left-aligned, the others
/// are numbers, right-aligned), and per column whether higher is better (`Some(true)`), lower is
/// (`Some(false)`) or neither.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub left: usize,
    pub better: Vec<Option<bool>>,
}

impl Table {
    /// As Markdown: a header, the alignment row, one line per row.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| {} |", self.head.join(" | "));
        let _ = writeln!(
            s,
            "|{}{}",
            "---|".repeat(self.left),
            "---:|".repeat(self.head.len() - self.left)
        );
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| c.show(REPORT_DASH)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }

    /// As aligned plain text, columns one space apart, undefined numbers as `-`.
    pub fn text(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| c.show("-")).collect())
            .collect();
        let width = |j: usize| {
            cells
                .iter()
                .filter_map(|r| r.get(j))
                .chain(std::iter::once(&self.head[j]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.head.len()).map(width).collect();
        let line = |row: &[String]| {
            let mut s = String::new();
            for (j, c) in row.iter().enumerate() {
                let w = widths[j];
                if j > 0 {
                    s.push(' ');
                }
                if j < self.left {
                    let _ = write!(s, "{c:<w$}");
                } else {
                    let _ = write!(s, "{c:>w$}");
                }
            }
            s.trim_end().to_string()
        };
        let mut s = line(&self.head);
        s.push('\n');
        for r in &cells {
            s.push_str(&line(r));
            s.push('\n');
        }
        s
    }

    /// Per column, the row holding the best value (by `better`), when there is more than one
    /// row and one strict best.
    pub fn best_rows(&self) -> Vec<Option<usize>> {
        (0..self.better.len())
            .map(|j| {
                let higher = self.better[j]?;
                if self.rows.len() < 2 {
                    return None;
                }
                let col: Vec<(usize, f64)> = self
                    .rows
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| r.get(j).and_then(Cell::value).map(|v| (i, v)))
                    .collect();
                let best =
                    col.iter()
                        .map(|x| x.1)
                        .reduce(|a, b| if higher { a.max(b) } else { a.min(b) })?;
                let at: Vec<usize> = col.iter().filter(|x| x.1 == best).map(|x| x.0).collect();
                (at.len() == 1).then(|| at[0])
            })
            .collect()
    }
}
