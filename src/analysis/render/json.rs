//! Every figure of the report as one JSON object (the schema is [`Report`]'s fields).

use crate::analysis::figures::Report;

pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serialises") + "\n"
}
