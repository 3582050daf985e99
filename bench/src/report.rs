//! What a run prints: a summary for a person, then exactly one JSON line of
//! figures as the last line of stdout, so scripts can take `tail -n 1`.
//!
//! A run that saw errors (lost deliveries, non-200 answers, a hash mismatch)
//! still prints its figures; the failures go to stderr and the exit status
//! becomes 1.

use serde_json::{Map, Value};

pub struct Report {
    lines: Vec<String>,
    figures: Map<String, Value>,
    failures: Vec<String>,
}

impl Report {
    pub fn new(bench: &str) -> Report {
        let mut figures = Map::new();
        figures.insert("bench".to_string(), Value::from(bench));
        Report {
            lines: Vec::new(),
            figures,
            failures: Vec::new(),
        }
    }

    /// One line of the human summary.
    pub fn line(&mut self, text: impl Into<String>) {
        self.lines.push(text.into());
    }

    /// One figure of the JSON line; a key set twice keeps the last value.
    pub fn figure(&mut self, key: &str, value: impl Into<Value>) {
        self.figures.insert(key.to_string(), value.into());
    }

    /// Marks the run as failed, with the reason.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.failures.push(reason.into());
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// The summary, then the JSON line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&Value::Object(self.figures.clone()).to_string());
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_comes_last_and_alone() {
        let mut report = Report::new("fanout");
        report.line("fanout: 2 clients");
        report.figure("clients", 2);
        report.figure("latency_ms", serde_json::json!({ "p50": 1.5 }));
        let text = report.render();
        let last = text.lines().last().unwrap();
        let figures: Value = serde_json::from_str(last).unwrap();
        assert_eq!(figures["bench"], "fanout");
        assert_eq!(figures["clients"], 2);
        assert_eq!(figures["latency_ms"]["p50"], 1.5);
        assert_eq!(text.lines().count(), 2);
    }
}
