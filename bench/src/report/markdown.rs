//! Markdown for the result sections: tables and the number formats they use.

/// A table: a header row, column alignments, then rows.
pub struct Table {
    head: Vec<String>,
    align: String,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `align`: one character per column, `l` (left), `r` (right) or `c` (centre).
    pub fn new(head: &[&str], align: &str) -> Table {
        Table {
            head: head.iter().map(|h| (*h).to_owned()).collect(),
            align: align.to_owned(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let rule: Vec<String> = self
            .align
            .chars()
            .map(|a| match a {
                'r' => "---:".to_owned(),
                'c' => ":---:".to_owned(),
                _ => "---".to_owned(),
            })
            .collect();
        let mut out = line(&self.head);
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// Rounded to `digits` decimals, trailing zeros dropped (`0.87`, `12`).
pub fn num(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

pub fn opt_num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| num(v, digits))
}

/// Milliseconds at a precision that suits their size: `0.4 ms`, `153 ms`, `1.2 s`.
pub fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 1000.0 => format!("{} s", num(v / 1000.0, 1)),
        Some(v) if v.abs() >= 100.0 => format!("{} ms", num(v, 0)),
        Some(v) => format!("{} ms", num(v, 1)),
    }
}

/// Milliseconds to the microsecond (`0.123 ms`), for the guard's fast routes.
pub fn ms3(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{} ms", num(v, 3)))
}

pub fn met(ok: bool) -> String {
    if ok { "yes".into() } else { "**no**".into() }
}

/// `200: 98, 429: 2`.
pub fn statuses(s: &std::collections::BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = s.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_drop_trailing_zeros_and_milliseconds_pick_their_unit() {
        assert_eq!(num(0.8704, 3), "0.87");
        assert_eq!(num(12.0, 2), "12");
        assert_eq!(ms(Some(1234.0)), "1.2 s");
        assert_eq!(ms(Some(153.4)), "153 ms");
        assert_eq!(ms(Some(2.345)), "2.3 ms");
        assert_eq!(ms(None), "-");
    }

    #[test]
    fn a_table_renders_its_alignment_row() {
        let mut t = Table::new(&["a", "b"], "lr");
        t.row(vec!["x".into(), "1".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---:|\n| x | 1 |\n");
    }
}
