//! Tsung configurations (`tsung.xml`) read into a [`Scenario`].
//!
//! What maps: `<load>` with its `<arrivalphase>`s (`<users arrivalrate|interarrival unit
//! maxnumber>`, `unit` second, minute or hour), `<load duration loop>`; `<sessions>` of
//! `type="ts_http"` with `probability` (summing to 100, Tsung's rule) or `weight`; inside a
//! session `<request><http url method version contents content_type if_modified_since>` with
//! `<http_header>` and `<add_cookie>`, `<thinktime>` (fixed, `random="true"`: exponential with
//! mean `value`, or `min`/`max`: uniform, as Tsung's manual says), and `<transaction>` as a plain
//! wrapper.
//!
//! What cannot map is refused by element, line and a sentence — dynamic variables and `%%_var%%`
//! substitutions, `<match>`, loops and conditions, non-HTTP sessions and requests, and any
//! element or attribute not listed above — never silently dropped. `<clients>`, `<servers>`,
//! `<monitoring>` and `<options>` describe Tsung's own cluster and are ignored with a note.
//!
//! The file is at most [`MAX_FILE_BYTES`]; a DOCTYPE is read (every Tsung file has one naming
//! its DTD, which is never fetched) but entity declarations are refused before parsing.

use std::path::Path;
use std::time::Duration;

use roxmltree::{Document, Node, ParsingOptions};

use super::{Phase, Request, Scenario, ScenarioError, Session, Step, Think};
use crate::pace::schedule::{MAX_RATE, MAX_STAGES};

/// Largest Tsung file read: configurations are pages of XML, not data.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Most XML nodes in one file (well above what 10 MB of real configuration holds).
const MAX_NODES: u32 = 2_000_000;
/// Longest think time, phase or load duration accepted.
const MAX_THINK: Duration = Duration::from_secs(24 * 3600);
const MAX_PHASE: Duration = Duration::from_secs(30 * 86_400);
/// Most repetitions of the load (`<load loop>`).
const MAX_LOOPS: u64 = 1000;
/// Session probabilities may miss 100 by this much (rounding in hand-written thirds).
const PROBABILITY_SLACK: f64 = 0.01;
/// What Tsung sends as the body's type when a request has contents and no `content_type`.
const DEFAULT_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Reads and checks a Tsung file.
pub fn read(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = crate::config::read_small_file(path, MAX_FILE_BYTES).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        element: None,
        message: format!("cannot read it: {e}"),
    })?;
    parse(&file, &text)
}

/// Parses the text of a Tsung file; `file` names it in messages.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let whole = |line: u32, message: String| ScenarioError { file: file.into(), line, element: None, message };
    // Entity declarations are how an XML file makes a parser expand text (the "billion laughs"):
    // no Tsung configuration needs one, so none is parsed.
    if let Some(at) = text.find("<!ENTITY") {
        let line = text[..at].matches('\n').count() as u32 + 1;
        return Err(ScenarioError {
            file: file.into(),
            line,
            element: Some("<!ENTITY>".into()),
            message: "entity declarations are not read: write the text out in full".into(),
        });
    }
    let options = ParsingOptions { allow_dtd: true, nodes_limit: MAX_NODES, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        whole(pos.row, format!("not well-formed XML: {e}"))
    })?;
    let mut reader = Reader { doc: &doc, file, notes: Vec::new(), absolute_url: None, relative_url: None };
    reader.scenario()
}

struct Reader<'a, 'input> {
    doc: &'a Document<'input>,
    file: &'a str,
    notes: Vec<String>,
    /// The first absolute URL (`http://host/…`), and the first URL without a leading `/`: each is
    /// mapped and noted once.
    absolute_url: Option<u32>,
    relative_url: Option<u32>,
}

/// Elements Tsung has that a replayed log cannot carry, with the reason given to the user.
fn unsupported(name: &str) -> Option<&'static str> {
    Some(match name {
        "dyn_variable" | "setdynvars" => {
            "dynamic variables take their values from responses or generators at run time; \
             a replayed log sends fixed requests"
        }
        "match" => "checking responses and reacting to them (loop, abort, restart) has no equivalent in a replayed log",
        "for" | "repeat" | "if" | "foreach" | "while" | "until" => {
            "loops and conditions make a session depend on run time; write the requests out in full"
        }
        "change_type" => "switching protocol or server in the middle of a session is not HTTP replay",
        "user" => "statically started users are not read; use an <arrivalphase>",
        "session_setup" => "per-phase session probabilities are not read; set them on <session>",
        "www_authenticate" | "oauth" => {
            "authentication computed by Tsung is not replayed; send the header yourself with <http_header> \
             or `sluice replay --header 'Authorization: @file'`"
        }
        "soap" => "SOAP actions are not read; send the SOAPAction header with <http_header>",
        "interaction" | "abort" | "set_option" => "run-time control of the session is not replayed",
        _ => return None,
    })
}

impl<'a, 'input> Reader<'a, 'input> {
    fn line(&self, node: Node) -> u32 {
        self.doc.text_pos_at(node.range().start).row
    }

    fn refuse(&self, node: Node, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.into(),
            line: self.line(node),
            element: Some(format!("<{}>", node.tag_name().name())),
            message: message.into(),
        }
    }

    fn refuse_attr(&self, node: Node, attr: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.into(),
            line: self.line(node),
            element: Some(format!("<{} {attr}>", node.tag_name().name())),
            message: message.into(),
        }
    }

    /// An element nothing here reads: refused with the reason when Tsung has it, else as unknown.
    fn refuse_element(&self, node: Node, parent: &str) -> ScenarioError {
        let name = node.tag_name().name();
        match unsupported(name) {
            Some(why) => self.refuse(node, format!("not supported: {why}")),
            None => {
                self.refuse(node, format!("not supported inside <{parent}>: sluice does not know how to replay it"))
            }
        }
    }

    /// The element children of `node`; text other than white space is refused.
    fn elements(&self, node: Node<'a, 'input>) -> Result<Vec<Node<'a, 'input>>, ScenarioError> {
        let mut out = Vec::new();
        for child in node.children() {
            if child.is_element() {
                out.push(child);
            } else if child.is_text() && !child.text().unwrap_or_default().trim().is_empty() {
                return Err(self.refuse(node, "holds text where Tsung expects only elements"));
            }
        }
        Ok(out)
    }

    /// Refuses any attribute of `node` not in `known`.
    fn only_attributes(&self, node: Node, known: &[&str]) -> Result<(), ScenarioError> {
        match node.attributes().find(|a| !known.contains(&a.name())) {
            None => Ok(()),
            Some(a) => Err(self.refuse_attr(
                node,
                a.name(),
                format!("this attribute is not supported (read here: {})", known.join(", ")),
            )),
        }
    }

    /// An attribute's text, refusing Tsung's `%%_name%%` substitutions.
    fn text_attr(&self, node: Node<'a, 'input>, attr: &str) -> Result<Option<&'a str>, ScenarioError> {
        match node.attribute(attr) {
            Some(v) if v.contains("%%") => Err(self.refuse_attr(
                node,
                attr,
                format!("'{v}' uses a dynamic substitution (%%…%%): a replayed log sends fixed values"),
            )),
            other => Ok(other),
        }
    }

    fn required(&self, node: Node<'a, 'input>, attr: &str) -> Result<&'a str, ScenarioError> {
        self.text_attr(node, attr)?.ok_or_else(|| self.refuse(node, format!("needs a '{attr}' attribute")))
    }

    /// A non-negative number attribute.
    fn number(&self, node: Node<'a, 'input>, attr: &str) -> Result<Option<f64>, ScenarioError> {
        let Some(text) = self.text_attr(node, attr)? else { return Ok(None) };
        match text.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(self.refuse_attr(node, attr, format!("'{text}' is not a number of 0 or more"))),
        }
    }

    /// `true` or `false` (absent: `default`).
    fn flag(&self, node: Node<'a, 'input>, attr: &str, default: bool) -> Result<bool, ScenarioError> {
        match self.text_attr(node, attr)?.map(str::trim) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.refuse_attr(node, attr, format!("'{other}' is neither true nor false"))),
        }
    }

    /// Seconds in one `unit` (Tsung's second, minute or hour; second when absent).
    fn unit(&self, node: Node<'a, 'input>) -> Result<f64, ScenarioError> {
        match self.text_attr(node, "unit")?.map(str::trim) {
            None | Some("second") => Ok(1.0),
            Some("minute") => Ok(60.0),
            Some("hour") => Ok(3600.0),
            Some(other) => Err(self.refuse_attr(node, "unit", format!("'{other}' is not second, minute or hour"))),
        }
    }

    /// `seconds` as a duration of at most `max`, or an error on `attr`.
    fn duration(&self, node: Node, attr: &str, seconds: f64, max: Duration) -> Result<Duration, ScenarioError> {
        if seconds <= max.as_secs_f64() {
            Ok(Duration::from_secs_f64(seconds))
        } else {
            let max = crate::display::compact_duration(max);
            Err(self.refuse_attr(node, attr, format!("{seconds} s is longer than the {max} allowed")))
        }
    }

    fn scenario(&mut self) -> Result<Scenario, ScenarioError> {
        let root = self.doc.root_element();
        if root.tag_name().name() != "tsung" {
            return Err(self.refuse(root, "not a Tsung configuration: its root element must be <tsung>"));
        }
        let logging = ["loglevel", "dumptraffic", "version", "backend"];
        self.only_attributes(root, &logging)?;
        let (mut load, mut sessions) = (None, None);
        let mut cluster = Vec::new();
        for node in self.elements(root)? {
            let line = self.line(node);
            match node.tag_name().name() {
                "clients" | "servers" | "monitoring" => {
                    cluster.push(format!("<{}> (line {line})", node.tag_name().name()))
                }
                "options" => {
                    self.check_options(node)?;
                    cluster.push(format!("<options> (line {line})"));
                }
                "load" if load.is_none() => load = Some(self.load(node)?),
                "sessions" if sessions.is_none() => sessions = Some(self.sessions(node)?),
                "load" | "sessions" => return Err(self.refuse(node, "appears twice; a Tsung file has one")),
                _ => return Err(self.refuse_element(node, "tsung")),
            }
        }
        if !cluster.is_empty() {
            self.notes.insert(
                0,
                format!(
                    "ignored {}: Tsung's own cluster, servers and monitoring; the target comes from --target",
                    cluster.join(", ")
                ),
            );
        }
        if root.attributes().next().is_some() {
            self.notes.push("ignored the <tsung> attributes (Tsung's own logging)".into());
        }
        let (phases, cutoff) =
            load.ok_or_else(|| self.refuse(root, "has no <load>: nothing says when users arrive"))?;
        let sessions = sessions.ok_or_else(|| self.refuse(root, "has no <sessions>: nothing says what users do"))?;
        Ok(Scenario { phases, sessions, cutoff, notes: std::mem::take(&mut self.notes) })
    }

    /// `<options>` are about Tsung's own machinery, except a global think time, which would change
    /// every `<thinktime>` of the scenario.
    fn check_options(&self, node: Node<'a, 'input>) -> Result<(), ScenarioError> {
        for option in node.descendants().filter(|n| n.has_tag_name("option")) {
            if option.attribute("name") == Some("thinktime") {
                return Err(self.refuse(
                    option,
                    "a global think time changes every <thinktime> of the sessions; write the think times in the sessions",
                ));
            }
        }
        Ok(())
    }

    /// `<load>`: its phases (sorted by number, repeated `loop` more times) and its cutoff.
    fn load(&self, node: Node<'a, 'input>) -> Result<(Vec<Phase>, Option<Duration>), ScenarioError> {
        self.only_attributes(node, &["duration", "unit", "loop"])?;
        let unit = self.unit(node)?;
        let cutoff = match self.number(node, "duration")? {
            Some(d) if d > 0.0 => Some(self.duration(node, "duration", d * unit, MAX_PHASE)?),
            Some(_) => return Err(self.refuse_attr(node, "duration", "must be more than 0")),
            None => None,
        };
        let loops = match self.number(node, "loop")? {
            Some(n) if n.fract() == 0.0 && n <= MAX_LOOPS as f64 => n as u64,
            Some(n) => {
                return Err(self.refuse_attr(node, "loop", format!("{n} is not a whole number up to {MAX_LOOPS}")));
            }
            None => 0,
        };
        let mut phases: Vec<(Phase, u32)> = Vec::new();
        for child in self.elements(node)? {
            if !child.has_tag_name("arrivalphase") {
                return Err(self.refuse_element(child, "load"));
            }
            let phase = self.phase(child)?;
            if phases.iter().any(|(p, _)| p.number == phase.number) {
                return Err(self.refuse_attr(child, "phase", format!("phase {} is defined twice", phase.number)));
            }
            phases.push((phase, self.line(child)));
        }
        if phases.is_empty() {
            return Err(self.refuse(node, "has no <arrivalphase>: no user would start"));
        }
        // Tsung runs the phases in the order of their numbers.
        phases.sort_by_key(|(p, _)| p.number);
        let once: Vec<Phase> = phases.into_iter().map(|(p, _)| p).collect();
        let total = once.len() as u64 * (loops + 1);
        if total > MAX_STAGES as u64 {
            return Err(self.refuse(node, format!("{total} phases with its loops; at most {MAX_STAGES}")));
        }
        let phases = (0..=loops).flat_map(|_| once.iter().cloned()).collect();
        Ok((phases, cutoff))
    }

    fn phase(&self, node: Node<'a, 'input>) -> Result<Phase, ScenarioError> {
        self.only_attributes(node, &["phase", "duration", "unit", "wait_all_sessions_end"])?;
        if self.flag(node, "wait_all_sessions_end", false)? {
            return Err(self.refuse_attr(
                node,
                "wait_all_sessions_end",
                "waiting for users to finish makes the next phase depend on the target's answers; \
                 a generated log is planned ahead",
            ));
        }
        let number = self.required(node, "phase")?;
        let number = number
            .trim()
            .parse::<u32>()
            .map_err(|_| self.refuse_attr(node, "phase", format!("'{number}' is not a phase number")))?;
        let seconds =
            self.number(node, "duration")?.ok_or_else(|| self.refuse(node, "needs a 'duration' attribute"))?;
        if seconds == 0.0 {
            return Err(self.refuse_attr(node, "duration", "must be more than 0"));
        }
        let duration = self.duration(node, "duration", seconds * self.unit(node)?, MAX_PHASE)?;
        let children = self.elements(node)?;
        if let Some(other) = children.iter().find(|c| !c.has_tag_name("users")) {
            return Err(self.refuse_element(*other, "arrivalphase"));
        }
        let users = match children.as_slice() {
            [users] => *users,
            [] => return Err(self.refuse(node, "has no <users>: it says how fast users arrive")),
            [_, second, ..] => return Err(self.refuse(*second, "appears twice in one <arrivalphase>")),
        };
        self.only_attributes(users, &["arrivalrate", "interarrival", "unit", "maxnumber"])?;
        let unit = self.unit(users)?;
        let users_per_second = match (self.number(users, "arrivalrate")?, self.number(users, "interarrival")?) {
            (Some(rate), None) if rate > 0.0 => rate / unit,
            (None, Some(gap)) if gap > 0.0 => 1.0 / (gap * unit),
            (Some(_), None) => return Err(self.refuse_attr(users, "arrivalrate", "must be more than 0")),
            (None, Some(_)) => return Err(self.refuse_attr(users, "interarrival", "must be more than 0")),
            (None, None) => return Err(self.refuse(users, "needs 'arrivalrate' or 'interarrival'")),
            (Some(_), Some(_)) => {
                return Err(self.refuse(users, "has both 'arrivalrate' and 'interarrival'; Tsung takes one"));
            }
        };
        if users_per_second > MAX_RATE {
            return Err(self.refuse(users, format!("{users_per_second} users/s; at most {MAX_RATE}")));
        }
        let max_users = match self.number(users, "maxnumber")? {
            Some(n) if n.fract() == 0.0 && n <= u64::MAX as f64 => Some(n as u64),
            Some(n) => return Err(self.refuse_attr(users, "maxnumber", format!("{n} is not a whole number"))),
            None => None,
        };
        Ok(Phase { number, duration, users_per_second, max_users })
    }

    fn sessions(&mut self, node: Node<'a, 'input>) -> Result<Vec<Session>, ScenarioError> {
        self.only_attributes(node, &[])?;
        let mut sessions = Vec::new();
        // (probability given, weight given) over all sessions, to refuse a mix of both.
        let (mut probabilities, mut weights) = (false, false);
        for child in self.elements(node)? {
            if !child.has_tag_name("session") {
                return Err(self.refuse_element(child, "sessions"));
            }
            self.only_attributes(child, &["name", "probability", "weight", "type"])?;
            let name = self.required(child, "name")?.to_string();
            match self.required(child, "type")?.trim() {
                "ts_http" => {}
                other => {
                    return Err(self.refuse_attr(
                        child,
                        "type",
                        format!("'{other}' sessions are not HTTP: sluice replays ts_http sessions only"),
                    ));
                }
            }
            let share = match (self.number(child, "probability")?, self.number(child, "weight")?) {
                (Some(p), None) => {
                    probabilities = true;
                    p
                }
                (None, Some(w)) => {
                    weights = true;
                    w
                }
                (None, None) => return Err(self.refuse(child, "needs a 'probability' (or a 'weight')")),
                (Some(_), Some(_)) => return Err(self.refuse(child, "has both 'probability' and 'weight'; choose one")),
            };
            if probabilities && weights {
                return Err(self.refuse(child, "mixes 'probability' and 'weight' across sessions; use one kind"));
            }
            let mut steps = Vec::new();
            self.steps(child, &mut steps)?;
            if !steps.iter().any(|s| matches!(s, Step::Request(_))) {
                return Err(self.refuse(child, format!("session '{name}' sends no <request>")));
            }
            sessions.push(Session { name, share, steps, line: self.line(child) });
        }
        if sessions.is_empty() {
            return Err(self.refuse(node, "has no <session>"));
        }
        let sum: f64 = sessions.iter().map(|s| s.share).sum();
        if probabilities && (sum - 100.0).abs() > PROBABILITY_SLACK {
            let each: Vec<String> =
                sessions.iter().map(|s| format!("'{}' {} (line {})", s.name, s.share, s.line)).collect();
            return Err(self.refuse(
                node,
                format!("the session probabilities add up to {sum}, not 100 (Tsung's rule): {}", each.join(", ")),
            ));
        }
        if sum <= 0.0 {
            return Err(self.refuse(node, "every session has weight 0: no user would play any"));
        }
        Ok(sessions)
    }

    /// The steps of a session or transaction, in order, appended to `steps`.
    fn steps(&mut self, node: Node<'a, 'input>, steps: &mut Vec<Step>) -> Result<(), ScenarioError> {
        for child in self.elements(node)? {
            match child.tag_name().name() {
                "request" => steps.push(Step::Request(self.request(child)?)),
                "thinktime" => steps.push(Step::Think(self.think(child)?)),
                // A transaction only names a group of requests for Tsung's statistics.
                "transaction" => {
                    self.only_attributes(child, &["name"])?;
                    self.steps(child, steps)?;
                }
                _ => return Err(self.refuse_element(child, node.tag_name().name())),
            }
        }
        Ok(())
    }

    fn think(&self, node: Node<'a, 'input>) -> Result<Think, ScenarioError> {
        self.only_attributes(node, &["value", "random", "min", "max", "wait_global"])?;
        if node.attribute("wait_global").is_some() {
            return Err(self.refuse_attr(
                node,
                "wait_global",
                "waiting for every user to reach this point depends on run time; a generated log is planned ahead",
            ));
        }
        let random = self.flag(node, "random", false)?;
        let seconds = |attr: &str, value: f64| self.duration(node, attr, value, MAX_THINK);
        match (self.number(node, "value")?, self.number(node, "min")?, self.number(node, "max")?) {
            (None, Some(min), Some(max)) if max > min => {
                Ok(Think::Uniform { min: seconds("min", min)?, max: seconds("max", max)? })
            }
            (None, Some(_), Some(_)) => Err(self.refuse(node, "needs 'max' greater than 'min'")),
            (Some(value), None, None) if random => Ok(Think::Exponential { mean: seconds("value", value)? }),
            (Some(value), None, None) => Ok(Think::Fixed(seconds("value", value)?)),
            (None, None, None) => {
                Err(self
                    .refuse(node, "needs 'value' (or 'min' and 'max'): the default from Tsung's options is not read"))
            }
            _ => Err(self.refuse(node, "takes either 'value' or both 'min' and 'max'")),
        }
    }

    fn request(&mut self, node: Node<'a, 'input>) -> Result<Request, ScenarioError> {
        self.only_attributes(node, &["subst"])?;
        if self.flag(node, "subst", false)? {
            return Err(self.refuse_attr(
                node,
                "subst",
                "dynamic substitution (%%…%%) fills requests at run time; a replayed log sends fixed requests",
            ));
        }
        let children = self.elements(node)?;
        if let Some(other) = children.iter().find(|c| !c.has_tag_name("http")) {
            return Err(match unsupported(other.tag_name().name()) {
                Some(_) => self.refuse_element(*other, "request"),
                None => self.refuse(*other, "is not an HTTP request: sluice replays <http> requests only"),
            });
        }
        match children.as_slice() {
            [http] => self.http(*http),
            [] => Err(self.refuse(node, "has no <http>")),
            [_, second, ..] => Err(self.refuse(*second, "a <request> holds one <http>")),
        }
    }

    fn http(&mut self, node: Node<'a, 'input>) -> Result<Request, ScenarioError> {
        if node.attribute("contents_from_file").is_some() {
            return Err(self.refuse_attr(
                node,
                "contents_from_file",
                "bodies read from another file are not read; put the body in 'contents'",
            ));
        }
        self.only_attributes(node, &["url", "method", "version", "contents", "content_type", "if_modified_since"])?;
        let line = self.line(node);
        let target = self.target(node, self.required(node, "url")?)?;
        let method = self.text_attr(node, "method")?.unwrap_or("GET").trim().to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(self.refuse_attr(node, "method", format!("'{method}' is not an HTTP method")));
        }
        let protocol = match self.text_attr(node, "version")?.map(str::trim) {
            None | Some("1.1") => "HTTP/1.1",
            Some("1.0") => "HTTP/1.0",
            Some(other) => return Err(self.refuse_attr(node, "version", format!("'{other}' is not 1.0 or 1.1"))),
        };
        let body = self.text_attr(node, "contents")?.map(str::to_string);
        let mut headers = Vec::new();
        if body.is_some() {
            let content_type = self.text_attr(node, "content_type")?.unwrap_or(DEFAULT_CONTENT_TYPE);
            headers.push(("Content-Type".to_string(), content_type.to_string()));
        }
        if let Some(date) = self.text_attr(node, "if_modified_since")? {
            headers.push(("If-Modified-Since".to_string(), date.to_string()));
        }
        let mut cookies = Vec::new();
        for child in self.elements(node)? {
            match child.tag_name().name() {
                "http_header" => {
                    self.only_attributes(child, &["name", "value", "encoding"])?;
                    if child.attribute("encoding").is_some_and(|e| e.trim() != "none") {
                        return Err(self.refuse_attr(
                            child,
                            "encoding",
                            "encoded header values are not read; write the value as it is sent",
                        ));
                    }
                    let name = self.required(child, "name")?.trim();
                    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                    {
                        return Err(self.refuse_attr(
                            child,
                            "name",
                            format!("'{name}' is not a header name sluice can log"),
                        ));
                    }
                    headers.push((name.to_string(), self.required(child, "value")?.to_string()));
                }
                "add_cookie" => {
                    self.only_attributes(child, &["key", "value"])?;
                    cookies.push(format!("{}={}", self.required(child, "key")?, self.required(child, "value")?));
                }
                _ => return Err(self.refuse_element(child, "http")),
            }
        }
        if !cookies.is_empty() {
            headers.push(("Cookie".to_string(), cookies.join("; ")));
        }
        Ok(Request { method, target, protocol: protocol.into(), headers, body, line })
    }

    /// The path and query a `url` asks for: an absolute URL keeps only those (the target comes
    /// from --target); a URL without a leading `/` gets one.
    fn target(&mut self, node: Node, url: &str) -> Result<String, ScenarioError> {
        let url = url.trim();
        if url.is_empty() || url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(self.refuse_attr(node, "url", format!("'{url}' is not a URL")));
        }
        let line = self.line(node);
        let lower = url.to_ascii_lowercase();
        let after_scheme = ["http://", "https://"].iter().find(|s| lower.starts_with(**s)).map(|s| &url[s.len()..]);
        Ok(match after_scheme {
            Some(rest) => {
                if self.absolute_url.is_none() {
                    self.absolute_url = Some(line);
                    self.notes.push(format!(
                        "absolute URLs (the first at line {line}) keep only their path and query: \
                         the target comes from --target"
                    ));
                }
                match rest.find(['/', '?']) {
                    Some(at) if rest[at..].starts_with('/') => rest[at..].to_string(),
                    Some(at) => format!("/{}", &rest[at..]),
                    None => "/".to_string(),
                }
            }
            None if url.starts_with('/') => url.to_string(),
            None => {
                if self.relative_url.is_none() {
                    self.relative_url = Some(line);
                    self.notes.push(format!("URLs without a leading / (the first at line {line}) are sent from /"));
                }
                format!("/{url}")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tsung").join(name)
    }

    /// A Tsung file around `sessions` (the body of `<sessions>`) with one phase.
    fn with_sessions(sessions: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\n<tsung>\n<load>\n<arrivalphase phase=\"1\" duration=\"1\">\
             <users arrivalrate=\"1\"/></arrivalphase>\n</load>\n<sessions>\n{sessions}\n</sessions>\n</tsung>\n"
        )
    }

    fn refusal(text: &str) -> ScenarioError {
        parse("t.xml", text).expect_err("refused")
    }

    #[test]
    fn the_documented_shapes_are_read() {
        let s = read(&fixture("shop.xml")).unwrap();
        assert_eq!(s.phases.len(), 2);
        assert_eq!(s.phases[0].duration, Duration::from_secs(2));
        assert_eq!(s.phases[0].users_per_second, 5.0, "arrivalrate 5 per second");
        assert_eq!(s.phases[1].duration, Duration::from_secs(60));
        assert!((s.phases[1].users_per_second - 10.0).abs() < 1e-9, "interarrival 0.1 s");
        assert_eq!(s.phases[1].max_users, Some(12));
        let names: Vec<_> = s.sessions.iter().map(|x| (x.name.as_str(), x.share)).collect();
        assert_eq!(names, [("browse", 70.0), ("buy", 30.0)]);
        let browse = &s.sessions[0];
        let targets: Vec<_> = browse.requests().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/", "/products?page=1", "/products/42", "/img/42.png"]);
        assert_eq!(browse.steps[1], Step::Think(Think::Fixed(Duration::from_millis(500))));
        assert!(browse.steps.contains(&Step::Think(Think::Exponential { mean: Duration::from_secs(1) })));
        let buy = &s.sessions[1];
        let post = buy.requests().find(|r| r.method == "POST").unwrap();
        assert_eq!(post.body.as_deref(), Some("item=42&qty=1"));
        assert_eq!(post.headers[0], ("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        assert!(post.headers.contains(&("X-Shop".into(), "sluice".into())));
        assert!(post.headers.contains(&("Cookie".into(), "cart=c1; lang=en".into())));
        let json = buy.requests().find(|r| r.method == "PUT").unwrap();
        assert_eq!(json.headers[0], ("Content-Type".into(), "application/json".into()));
        assert!(
            buy.steps
                .contains(&Step::Think(Think::Uniform { min: Duration::from_secs(1), max: Duration::from_secs(2) }))
        );
        assert!(s.notes.iter().any(|n| n.contains("<clients>") && n.contains("<servers>")), "{:?}", s.notes);
        assert!(s.notes.iter().any(|n| n.contains("absolute URLs")), "{:?}", s.notes);
    }

    #[test]
    fn each_unsupported_feature_is_refused_by_element_and_line() {
        for (file, element, line) in [
            ("dyn_variable.xml", "<dyn_variable>", 11),
            ("setdynvars.xml", "<setdynvars>", 9),
            ("substitution.xml", "<http url>", 10),
            ("match.xml", "<match>", 11),
            ("for.xml", "<for>", 9),
            ("repeat.xml", "<repeat>", 9),
            ("if.xml", "<if>", 9),
            ("jabber_session.xml", "<session type>", 8),
            ("pgsql_request.xml", "<pgsql>", 9),
            ("change_type.xml", "<change_type>", 10),
            ("unknown.xml", "<teleport>", 9),
            ("probabilities.xml", "<sessions>", 7),
            ("entity.xml", "<!ENTITY>", 3),
        ] {
            let e = read(&fixture(file)).expect_err(file);
            assert_eq!((e.element.as_deref(), e.line), (Some(element), line), "{file}: {e}");
            assert!(e.to_string().contains(&format!("{file}:{line}: {element}: ")), "{e}");
            assert!(e.message.len() > 20, "a sentence says why: {e}");
        }
    }

    #[test]
    fn probabilities_must_sum_to_100_and_name_each_session() {
        let e = refusal(&with_sessions(
            "<session name=\"a\" probability=\"70\" type=\"ts_http\"><request><http url=\"/\"/></request></session>\n\
             <session name=\"b\" probability=\"20\" type=\"ts_http\"><request><http url=\"/\"/></request></session>",
        ));
        assert_eq!((e.element.as_deref(), e.line), (Some("<sessions>"), 6));
        assert!(e.message.contains("add up to 90") && e.message.contains("'a' 70 (line 7)"), "{e}");
        // Weights (Tsung 1.5) need not sum to anything.
        let ok = parse(
            "t.xml",
            &with_sessions(
                "<session name=\"a\" weight=\"2\" type=\"ts_http\"><request><http url=\"/\"/></request></session>\n\
                 <session name=\"b\" weight=\"1\" type=\"ts_http\"><request><http url=\"/\"/></request></session>",
            ),
        )
        .unwrap();
        assert_eq!(ok.sessions.iter().map(|s| s.share).collect::<Vec<_>>(), [2.0, 1.0]);
    }

    #[test]
    fn small_mistakes_are_named_too() {
        let session = |body: &str| {
            with_sessions(&format!("<session name=\"s\" probability=\"100\" type=\"ts_http\">\n{body}\n</session>"))
        };
        for (text, element, words) in [
            (session("<request><http url=\"/\" method=\"G ET\"/></request>"), "<http method>", "not an HTTP method"),
            (session("<request><http url=\"/\" version=\"2\"/></request>"), "<http version>", "not 1.0 or 1.1"),
            (session("<request><http url=\"/\" colour=\"red\"/></request>"), "<http colour>", "not supported"),
            (session("<thinktime/><request><http url=\"/\"/></request>"), "<thinktime>", "needs 'value'"),
            (session("<thinktime value=\"2\" random=\"maybe\"/>"), "<thinktime random>", "neither true nor false"),
            (session("<thinktime min=\"3\" max=\"2\"/>"), "<thinktime>", "greater than 'min'"),
            (session("<thinktime value=\"100000\"/>"), "<thinktime value>", "longer than"),
            (session("<thinktime value=\"1\"/>"), "<session>", "sends no <request>"),
            (session("<request subst=\"true\"><http url=\"/\"/></request>"), "<request subst>", "dynamic"),
            (
                session("<request><http url=\"/\" contents_from_file=\"/x\"/></request>"),
                "<http contents_from_file>",
                "contents",
            ),
            (
                session("<request><http url=\"/\"><www_authenticate userid=\"a\" passwd=\"b\"/></http></request>"),
                "<www_authenticate>",
                "Authorization",
            ),
            (session("<request><http url=\"/\"/><http url=\"/\"/></request>"), "<http>", "one <http>"),
            (session("<request>text<http url=\"/\"/></request>"), "<request>", "text"),
            ("<nottsung/>".to_string(), "<nottsung>", "root element"),
        ] {
            let e = refusal(&text);
            assert_eq!(e.element.as_deref(), Some(element), "{text}: {e}");
            assert!(e.message.contains(words), "{text}: {e}");
        }
    }

    #[test]
    fn not_xml_and_oversized_files_are_refused_whole() {
        let e = refusal("this is not XML at all");
        assert!(e.message.contains("not well-formed XML"), "{e}");
        let e = refusal("<tsung><load></tsung>");
        assert!(e.message.contains("not well-formed XML") && e.line == 1, "{e}");
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
    }

    #[test]
    fn a_doctype_naming_tsungs_dtd_is_fine_and_loops_repeat_the_phases() {
        let text = with_sessions(
            "<session name=\"s\" probability=\"100\" type=\"ts_http\"><request><http url=\"/\"/></request></session>",
        )
        .replace(
            "<?xml version=\"1.0\"?>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE tsung SYSTEM \"/usr/share/tsung/tsung-1.0.dtd\">",
        )
        .replace("<load>", "<load loop=\"2\" duration=\"2\" unit=\"minute\">");
        let s = parse("t.xml", &text).unwrap();
        assert_eq!(s.phases.len(), 3, "loop=2: the sequence runs 3 times");
        assert_eq!(s.cutoff, Some(Duration::from_secs(120)));
    }
}
