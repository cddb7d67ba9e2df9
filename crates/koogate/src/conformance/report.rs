//! The three forms of a conformance report: a table for people, JSON for programs, JUnit XML
//! for CI systems.

use std::fmt::Write as _;

use super::Report;

/// The human table: one line per case (`pass`/`FAIL`, the reason or the notes), one `skip` line
/// per case not sent (with why), then a summary.
pub fn table(report: &Report) -> String {
    let width = report
        .cases
        .iter()
        .map(|c| c.id.as_str())
        .chain(report.skipped.iter().map(|s| s.id.as_str()))
        .map(|id| id.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "koogate conformance: {} ({}) against {}{}\n\n",
        report.family,
        report.charging,
        report.url,
        if report.debug_only {
            ", debug cases only"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "{:<width$}  RESULT  REASON", "CASE");
    for c in &report.cases {
        let verdict = if c.passed { "pass" } else { "FAIL" };
        let detail = match &c.reason {
            Some(r) => one_line(r),
            None if c.notes.is_empty() => String::new(),
            None => format!("note: {}", one_line(&c.notes.join("; "))),
        };
        let _ = writeln!(out, "{:<width$}  {verdict:<6}  {detail}", c.id);
    }
    for s in &report.skipped {
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {}",
            s.id,
            "skip",
            one_line(&s.reason)
        );
    }
    let _ = write!(
        out,
        "\n{} cases: {} passed, {} failed",
        report.total, report.passed, report.failed
    );
    if !report.skipped.is_empty() {
        let _ = write!(out, "; {} skipped (not sent)", report.skipped.len());
    }
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The JSON report (pretty-printed).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        serde_json::json!({"error": format!("cannot serialise the report: {e}")}).to_string()
    })
}

/// The JUnit XML report: one `<testsuite>` per run, one `<testcase>` per case, a `<failure>`
/// with the reason for each failed case, a `<skipped>` one for each case not sent.
pub fn junit(report: &Report) -> String {
    let suite = format!("{}.{}", report.family, report.charging);
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let tests = report.total + report.skipped.len();
    let skipped = report.skipped.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"koogate conformance\" tests=\"{tests}\" failures=\"{}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">",
        report.failed,
        secs(report.duration_ms)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">",
        xml(&suite),
        report.failed,
        secs(report.duration_ms)
    );
    let _ = writeln!(out, "    <properties>");
    for (name, value) in [
        ("url", report.url.as_str()),
        ("family", report.family),
        ("charging", report.charging),
    ] {
        let _ = writeln!(
            out,
            "      <property name=\"{name}\" value=\"{}\"/>",
            xml(value)
        );
    }
    let _ = writeln!(out, "    </properties>");
    for c in &report.cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{}\"",
            xml(&suite),
            c.group.name(),
            xml(&c.id),
            secs(c.duration_ms)
        );
        match &c.reason {
            Some(reason) if !c.passed => {
                out.push_str(">\n");
                let mut detail = format!("{}\n\n{}", c.what, reason);
                if let Some(seen) = &c.exchange {
                    let _ = write!(detail, "\n\nrequest: {}", seen.request);
                    if let Some(b) = &seen.request_body {
                        let _ = write!(detail, "\nrequest body: {b}");
                    }
                    if let Some(s) = seen.http_status {
                        let _ = write!(detail, "\nHTTP status: {s}");
                    }
                    if let Some(b) = &seen.response_body {
                        let _ = write!(detail, "\nresponse body: {b}");
                    }
                }
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"conformance\">{}</failure>",
                    xml(&one_line(reason)),
                    xml(&detail)
                );
                out.push_str("    </testcase>\n");
            }
            _ if !c.notes.is_empty() => {
                out.push_str(">\n");
                let _ = writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    xml(&c.notes.join("\n"))
                );
                out.push_str("    </testcase>\n");
            }
            _ => out.push_str("/>\n"),
        }
    }
    for s in &report.skipped {
        let _ = writeln!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"0.000\">",
            xml(&suite),
            s.group.name(),
            xml(&s.id)
        );
        let _ = writeln!(
            out,
            "      <skipped message=\"{}\">{}</skipped>",
            xml(&one_line(&s.reason)),
            xml(&format!("{}\n\n{}", s.what, s.reason))
        );
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Escapes text for an XML attribute or element; characters XML 1.0 forbids are replaced by
/// U+FFFD.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escaping() {
        assert_eq!(
            xml("a<b>&\"c\"'\u{1}\n中"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;\u{FFFD}&#10;中"
        );
    }
}
