//! `--format auto`: which format a log is written in, from its first lines.

use sluice_parsers::Format;

use super::har::{HarReader, looks_like_har};
use super::{EntryReader, LogReader};
use crate::config::FormatChoice;

/// Lines read ahead to pick a format for `--format auto`.
pub const SNIFF_LINES: usize = 50;

/// The entries of the inputs in the chosen format: a HAR (named, or recognised by `auto` from the
/// start of the first input), else log lines in the format [`resolve_format`] settles.
pub fn open_entries(choice: &FormatChoice, mut reader: LogReader) -> anyhow::Result<EntryReader> {
    let har = match choice {
        FormatChoice::Har => true,
        FormatChoice::Auto => looks_like_har(reader.head()?),
        FormatChoice::Fixed(_) => false,
    };
    if har {
        return Ok(EntryReader::Har(HarReader::new(reader)));
    }
    let format = resolve_format(choice, &mut reader)?;
    Ok(EntryReader::Lines { reader, format })
}

/// Settles a line format: a fixed one as given, `auto` by sniffing the first lines. Prints
/// nothing: the caller says what was chosen (the format's name), where it has somewhere to say it.
pub fn resolve_format(choice: &FormatChoice, reader: &mut LogReader) -> anyhow::Result<Format> {
    match choice {
        FormatChoice::Fixed(format) => Ok(format.clone()),
        FormatChoice::Har => anyhow::bail!("--format har: a HAR is not read line by line here"),
        FormatChoice::Auto => {
            // The sniff error says what it found; the hint of what to do is given once, here. A
            // log cut within its first lines has too few to recognise: that is said too.
            let sample = reader.prefetch(SNIFF_LINES)?;
            let empty = sample.is_empty();
            let sniffed = (!empty).then(|| Format::sniff(&sample));
            let cuts: String = reader.cuts().iter().map(|cut| format!("; {cut}")).collect();
            let Some(sniffed) = sniffed else {
                anyhow::bail!(
                    "--format auto: no line to recognise at the start of the log (it is empty, cut short, or \
                     its first lines are longer than --max-line-bytes and were skipped); name the format with \
                     --format{cuts}"
                );
            };
            let format = sniffed.map_err(|e| {
                anyhow::anyhow!(
                    "--format auto: {e}; name the format with --format: a preset ({}), 'nginx:<log_format>' or \
                     'apache:<LogFormat>'{cuts}",
                    Format::preset_names().join(", ")
                )
            })?;
            Ok(format)
        }
    }
}
