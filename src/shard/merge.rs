//! Shard CSVs joined into one, in `seq` order, with memory that does not grow with the rows.
//!
//! A shard writes its rows as answers arrive, so its CSV is only roughly in `seq` order. Each CSV
//! is first read once to see whether it is in order; one that is not is cut into runs of at most
//! [`MergeOptions::run_bytes`], each sorted in memory and written to a temporary directory beside
//! the output. Then one k-way merge reads every in-order CSV and every run, one row of each at a
//! time, and writes the rows in `seq` order. A `seq` seen twice (within a shard or across two)
//! stops the merge, naming both places.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use crate::results::HEADER;

/// Column of `seq` in [`HEADER`].
const SEQ: usize = 0;
/// A sorted run's rows carry two more fields: which input the row came from and its line there.
const RUN_FIELDS: usize = HEADER.len() + 2;
/// The longest row a merge sorts (a results row is a URL and a few numbers: far shorter).
const MAX_ROW_BYTES: usize = 64 * 1024 * 1024;
/// Read and write buffers of each input, run and the output.
const BUFFER_BYTES: usize = 128 * 1024;

/// Bounds of a merge.
#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// Rows sorted in memory at once, in bytes, when a CSV is not in `seq` order.
    pub run_bytes: usize,
    /// Files read at once in the merge; more sorted runs are first merged into fewer.
    pub max_open: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions { run_bytes: 64 * 1024 * 1024, max_open: 256 }
    }
}

/// One CSV to merge.
#[derive(Debug, Clone)]
pub struct MergeInput {
    pub path: PathBuf,
    /// The rows its manifest counts: a CSV with another number is refused (cut short, or
    /// appended to).
    pub expected_rows: Option<u64>,
}

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeStats {
    /// Rows written.
    pub rows: u64,
    /// Rows from each input, in the order the inputs were given.
    pub per_input: Vec<u64>,
}

/// Why a merge stopped (nothing is left at the output path then).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("{file}: {reason}")]
    Input { file: String, reason: String },
    #[error("{file}: {rows} rows, but its manifest counts {expected} (sent and not sent): not the CSV the shard wrote")]
    RowCount { file: String, rows: u64, expected: u64 },
    #[error("{}", duplicate_text(*.seq, first, second))]
    Duplicate { seq: u64, first: (String, u64), second: (String, u64) },
}

fn duplicate_text(seq: u64, first: &(String, u64), second: &(String, u64)) -> String {
    if first.0 == second.0 {
        format!(
            "seq {seq} appears twice in {} (lines {} and {})",
            first.0,
            first.1.min(second.1),
            first.1.max(second.1)
        )
    } else {
        format!(
            "seq {seq} is in {} (line {}) and in {} (line {}): shards of one run never share a request",
            first.0, first.1, second.0, second.1
        )
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MergeError + '_ {
    move |error| MergeError::Io { path: path.display().to_string(), error }
}

/// Merges the results CSVs `inputs` into `out` in `seq` order. Every input must have exactly
/// the results header ([`HEADER`]). `out` is written to a temporary file beside it and renamed
/// into place at the end.
pub fn merge_csvs(inputs: &[MergeInput], out: &Path, options: &MergeOptions) -> Result<MergeStats, MergeError> {
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut spill = Spill {
        dir: tempfile::Builder::new().prefix(".sluice-merge-").tempdir_in(&out_dir).map_err(io_error(&out_dir))?,
        made: 0,
    };
    let names: Vec<String> = inputs.iter().map(|i| i.path.display().to_string()).collect();
    let paths: Vec<PathBuf> = inputs.iter().map(|i| i.path.clone()).collect();
    let mut pending: Vec<Pending> = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        if in_seq_order(path)? {
            pending.push(Pending::Input(index));
        } else {
            spill_sorted_runs(path, index, &mut spill, options.run_bytes.max(1), &mut pending)?;
        }
    }
    // Keep the files open at once within bounds: merge the first ones into one run until they are.
    let max_open = options.max_open.max(2);
    while pending.len() > max_open {
        let take = (pending.len() - max_open + 1).min(max_open);
        let group: Vec<Pending> = pending.drain(..take).collect();
        let sources = group.iter().map(|p| p.open(&paths)).collect::<Result<Vec<_>, _>>()?;
        let merged = spill.next_path();
        let file = File::create(&merged).map_err(io_error(&merged))?;
        let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(BUFFER_BYTES, file));
        merge_sources(sources, &names, |row| {
            Ok(write_run_row(&mut writer, row.record.iter().take(HEADER.len()), row.input, row.line)?)
        })
        .map_err(|e| e.or_io(&merged))?;
        writer.flush().map_err(io_error(&merged))?;
        for run in group {
            if let Pending::Run(path) = run {
                let _ = std::fs::remove_file(path);
            }
        }
        pending.push(Pending::Run(merged));
    }
    let sources = pending.iter().map(|p| p.open(&paths)).collect::<Result<Vec<_>, _>>()?;
    let mut temp = tempfile::Builder::new()
        .prefix(".sluice-merge-out-")
        .suffix(".csv.tmp")
        .tempfile_in(&out_dir)
        .map_err(io_error(&out_dir))?;
    let mut per_input = vec![0u64; inputs.len()];
    {
        let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(BUFFER_BYTES, temp.as_file_mut()));
        writer.write_record(HEADER).map_err(|e| io_error(out)(e.into()))?;
        merge_sources(sources, &names, |row| {
            per_input[row.input] += 1;
            writer.write_record(row.record.iter().take(HEADER.len()))?;
            Ok(())
        })
        .map_err(|e| e.or_io(out))?;
        writer.flush().map_err(io_error(out))?;
    }
    for ((input, &rows), name) in inputs.iter().zip(&per_input).zip(&names) {
        if let Some(expected) = input.expected_rows
            && expected != rows
        {
            return Err(MergeError::RowCount { file: name.clone(), rows, expected });
        }
    }
    temp.as_file().sync_all().map_err(io_error(out))?;
    temp.persist(out).map_err(|e| io_error(out)(e.error))?;
    Ok(MergeStats { rows: per_input.iter().sum(), per_input })
}

/// The directory sorted runs are written to (removed with everything in it when dropped).
struct Spill {
    dir: tempfile::TempDir,
    made: usize,
}

impl Spill {
    fn next_path(&mut self) -> PathBuf {
        self.made += 1;
        self.dir.path().join(format!("run-{}.csv", self.made))
    }
}

/// What the merge will read: an input already in `seq` order, or a sorted run.
enum Pending {
    Input(usize),
    Run(PathBuf),
}

impl Pending {
    fn open(&self, inputs: &[PathBuf]) -> Result<Source, MergeError> {
        match self {
            Pending::Input(index) => Source::input(&inputs[*index], *index),
            Pending::Run(path) => Source::run(path),
        }
    }
}

/// Whether a CSV's rows are in `seq` order (reading stops at the first that is not); checks
/// the header and every row's `seq` on the way.
fn in_seq_order(path: &Path) -> Result<bool, MergeError> {
    let mut reader = open_input(path)?;
    let mut record = ByteRecord::new();
    let mut last = None;
    while read_row(&mut reader, &mut record, path)? {
        let seq = seq_of(&record, path)?;
        if last.is_some_and(|last| seq < last) {
            return Ok(false);
        }
        last = Some(seq);
    }
    Ok(true)
}

/// Cuts a CSV into runs of at most `run_bytes` of rows, each sorted by `seq` and written to
/// `spill` with the input's index and each row's line.
fn spill_sorted_runs(
    path: &Path,
    input: usize,
    spill: &mut Spill,
    run_bytes: usize,
    pending: &mut Vec<Pending>,
) -> Result<(), MergeError> {
    let file_bytes = std::fs::metadata(path).map_err(io_error(path))?.len();
    let mut chunk = Chunk::with_capacity(run_bytes.min(usize::try_from(file_bytes).unwrap_or(usize::MAX)));
    let mut reader = open_input(path)?;
    let mut record = ByteRecord::new();
    loop {
        let more = read_row(&mut reader, &mut record, path)?;
        if more {
            if record.as_slice().len() > MAX_ROW_BYTES {
                let reason =
                    format!("line {}: longer than {} MiB: not a results row", line_of(&record), MAX_ROW_BYTES >> 20);
                return Err(input_error(path, reason));
            }
            chunk.push(seq_of(&record, path)?, &record);
        }
        if (!more && !chunk.rows.is_empty()) || chunk.bytes() >= run_bytes {
            let run = spill.next_path();
            chunk.write_sorted(&run, input).map_err(io_error(&run))?;
            pending.push(Pending::Run(run));
        }
        if !more {
            return Ok(());
        }
    }
}

/// Rows held to be sorted: every field's bytes in one buffer, so a row costs its text and a few
/// numbers (a record per row would cost twice its text in allocations).
struct Chunk {
    data: Vec<u8>,
    /// Each row's field ends in `data`, from the row's start: [`HEADER`]`.len()` per row.
    ends: Vec<u32>,
    /// Per row: its seq, its line, its number (for `ends`) and where it starts in `data`.
    rows: Vec<(u64, u64, usize, usize)>,
}

impl Chunk {
    fn with_capacity(bytes: usize) -> Chunk {
        Chunk { data: Vec::with_capacity(bytes), ends: Vec::new(), rows: Vec::new() }
    }

    /// Bytes held, as the budget counts them.
    fn bytes(&self) -> usize {
        self.data.len() + self.ends.len() * 4 + self.rows.len() * 32
    }

    fn push(&mut self, seq: u64, record: &ByteRecord) {
        let start = self.data.len();
        self.data.extend_from_slice(record.as_slice());
        // Rows are at most MAX_ROW_BYTES: u32 ends hold them.
        self.ends.extend((0..record.len()).map(|i| record.range(i).map_or(0, |r| r.end) as u32));
        self.rows.push((seq, line_of(record), self.rows.len(), start));
    }

    /// Writes the rows in (seq, line) order to a run file, and empties the chunk.
    fn write_sorted(&mut self, run: &Path, input: usize) -> io::Result<()> {
        self.rows.sort_unstable_by_key(|&(seq, line, _, _)| (seq, line));
        let file = File::create(run)?;
        let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(BUFFER_BYTES, file));
        let width = HEADER.len();
        for &(_, line, n, start) in &self.rows {
            let ends = &self.ends[n * width..(n + 1) * width];
            let fields = (0..width).map(|i| {
                let from = if i == 0 { 0 } else { ends[i - 1] as usize };
                &self.data[start + from..start + ends[i] as usize]
            });
            write_run_row(&mut writer, fields, input, line)?;
        }
        writer.flush()?;
        self.data.clear();
        self.ends.clear();
        self.rows.clear();
        Ok(())
    }
}

/// A run's row: the results fields, then the input it came from and its line there.
fn write_run_row<'a, W: Write>(
    writer: &mut csv::Writer<W>,
    fields: impl Iterator<Item = &'a [u8]>,
    input: usize,
    line: u64,
) -> io::Result<()> {
    for field in fields {
        writer.write_field(field)?;
    }
    writer.write_field(input.to_string())?;
    writer.write_field(line.to_string())?;
    writer.write_record(None::<&[u8]>)?;
    Ok(())
}

/// Opens a results CSV and checks that its header is exactly this sluice's.
fn open_input(path: &Path) -> Result<csv::Reader<Box<dyn Read>>, MergeError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(Box::new(BufReader::with_capacity(BUFFER_BYTES, file)) as Box<dyn Read>);
    let header = reader.byte_headers().map_err(|e| input_error(path, e.to_string()))?;
    if !header.iter().eq(HEADER.iter().map(|h| h.as_bytes())) {
        let found: Vec<String> = header.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        return Err(input_error(
            path,
            format!(
                "header: expected {} (the results columns of this sluice), found {}",
                HEADER.join(","),
                if found.iter().all(String::is_empty) { "none".into() } else { found.join(",") }
            ),
        ));
    }
    Ok(reader)
}

fn input_error(path: &Path, reason: String) -> MergeError {
    MergeError::Input { file: path.display().to_string(), reason }
}

/// Reads the next row of an input, which must have every column.
fn read_row(reader: &mut csv::Reader<Box<dyn Read>>, record: &mut ByteRecord, path: &Path) -> Result<bool, MergeError> {
    let more = reader.read_byte_record(record).map_err(|e| input_error(path, e.to_string()))?;
    if more && record.len() != HEADER.len() {
        return Err(input_error(
            path,
            format!("line {}: {} fields, expected {}", line_of(record), record.len(), HEADER.len()),
        ));
    }
    Ok(more)
}

fn line_of(record: &ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

fn seq_of(record: &ByteRecord, path: &Path) -> Result<u64, MergeError> {
    let cell = &record[SEQ];
    std::str::from_utf8(cell).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
        input_error(
            path,
            format!("line {}: seq: '{}' is not a whole number", line_of(record), String::from_utf8_lossy(cell)),
        )
    })
}

/// One row on its way through the merge.
struct Row {
    seq: u64,
    /// Index of the input it came from.
    input: usize,
    /// Its line in that input.
    line: u64,
    /// The results columns (and, read from a run, the two fields of a run after them).
    record: ByteRecord,
}

/// Where the merge reads rows from: an input in `seq` order, or a sorted run.
struct Source {
    reader: csv::Reader<Box<dyn Read>>,
    path: PathBuf,
    /// The input, when this is one (a run's rows say which input they came from).
    input: Option<usize>,
}

impl Source {
    fn input(path: &Path, index: usize) -> Result<Source, MergeError> {
        Ok(Source { reader: open_input(path)?, path: path.to_path_buf(), input: Some(index) })
    }

    fn run(path: &Path) -> Result<Source, MergeError> {
        let file = File::open(path).map_err(io_error(path))?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(Box::new(BufReader::with_capacity(BUFFER_BYTES, file)) as Box<dyn Read>);
        Ok(Source { reader, path: path.to_path_buf(), input: None })
    }

    fn next(&mut self) -> Result<Option<Row>, MergeError> {
        let mut record = ByteRecord::new();
        match self.input {
            Some(input) => {
                if !read_row(&mut self.reader, &mut record, &self.path)? {
                    return Ok(None);
                }
                Ok(Some(Row { seq: seq_of(&record, &self.path)?, input, line: line_of(&record), record }))
            }
            None => {
                let more = self.reader.read_byte_record(&mut record).map_err(|e| io_error(&self.path)(e.into()))?;
                if !more {
                    return Ok(None);
                }
                // Written by this merge a moment ago: anything else is a fault of the disk.
                let number = |i: usize| std::str::from_utf8(record.get(i)?).ok()?.parse::<u64>().ok();
                match (record.len() == RUN_FIELDS, number(SEQ), number(HEADER.len()), number(HEADER.len() + 1)) {
                    (true, Some(seq), Some(input), Some(line)) => {
                        Ok(Some(Row { seq, input: input as usize, line, record }))
                    }
                    _ => Err(io_error(&self.path)(io::Error::other("a sorted run was damaged on disk"))),
                }
            }
        }
    }
}

/// A merge step's failure: the merge's own, or writing its output.
enum StepError {
    Merge(MergeError),
    Write(io::Error),
}

impl From<io::Error> for StepError {
    fn from(e: io::Error) -> Self {
        StepError::Write(e)
    }
}

impl From<csv::Error> for StepError {
    fn from(e: csv::Error) -> Self {
        StepError::Write(e.into())
    }
}

impl StepError {
    /// A write error, blamed on the file being written.
    fn or_io(self, path: &Path) -> MergeError {
        match self {
            StepError::Merge(e) => e,
            StepError::Write(e) => io_error(path)(e),
        }
    }
}

/// The k-way merge: the smallest `seq` of all sources next, one row per source held.
fn merge_sources(
    mut sources: Vec<Source>,
    names: &[String],
    mut emit: impl FnMut(&Row) -> Result<(), StepError>,
) -> Result<(), StepError> {
    let mut heads: Vec<Option<Row>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        let row = source.next().map_err(StepError::Merge)?;
        if let Some(row) = &row {
            heap.push(Reverse((row.seq, row.input, row.line, i)));
        }
        heads.push(row);
    }
    let mut last: Option<(u64, usize, u64)> = None;
    while let Some(Reverse((seq, _, _, i))) = heap.pop() {
        let row = heads[i].take().expect("a source in the heap holds a row");
        if let Some((last_seq, input, line)) = last
            && last_seq == seq
        {
            return Err(StepError::Merge(MergeError::Duplicate {
                seq,
                first: (names[input].clone(), line),
                second: (names[row.input].clone(), row.line),
            }));
        }
        emit(&row)?;
        last = Some((seq, row.input, row.line));
        let next = sources[i].next().map_err(StepError::Merge)?;
        if let Some(next) = &next {
            heap.push(Reverse((next.seq, next.input, next.line, i)));
        }
        heads[i] = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results row with this seq (and the seq in the URL, to see that rows stay whole).
    fn row(seq: u64) -> String {
        format!(
            "{seq},{},2026-12-01 02:00:00.000,2026-12-01 02:00:00.000,2026-12-01 02:00:00.001,0.500,GET,\
             \"/a?q={seq},x\",200,200,1.250,10,,,",
            seq + 1
        )
    }

    fn write_csv(path: &Path, seqs: &[u64]) {
        let mut text = HEADER.join(",") + "\n";
        for &s in seqs {
            text += &row(s);
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    fn inputs(paths: &[&PathBuf]) -> Vec<MergeInput> {
        paths.iter().map(|p| MergeInput { path: p.to_path_buf(), expected_rows: None }).collect()
    }

    fn seqs_of(path: &Path) -> Vec<u64> {
        let mut reader = csv::Reader::from_path(path).unwrap();
        reader.records().map(|r| r.unwrap()[0].parse().unwrap()).collect()
    }

    #[test]
    fn rows_come_out_in_seq_order_byte_for_byte_whatever_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        write_csv(&a, &[0, 2, 4, 6, 8]);
        write_csv(&b, &[5, 1, 9, 3, 7]);
        let out = dir.path().join("out.csv");
        // Runs of one row each, and at most three files open: runs are merged into longer ones.
        for options in [MergeOptions::default(), MergeOptions { run_bytes: 1, max_open: 3 }] {
            let stats = merge_csvs(&inputs(&[&a, &b]), &out, &options).unwrap();
            assert_eq!(stats, MergeStats { rows: 10, per_input: vec![5, 5] });
            let expected: String =
                std::iter::once(HEADER.join(",")).chain((0..10).map(row)).map(|l| l + "\n").collect();
            assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
        }
        // Nothing is left behind but the inputs and the output.
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["a.csv", "b.csv", "out.csv"]);
    }

    #[test]
    fn a_seq_in_two_shards_names_both() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (dir.path().join("a.csv"), dir.path().join("b.csv"), dir.path().join("out.csv"));
        write_csv(&a, &[0, 2, 4]);
        write_csv(&b, &[1, 3, 2]);
        let e = merge_csvs(&inputs(&[&a, &b]), &out, &MergeOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("seq 2 is in "), "{e}");
        assert!(e.contains("a.csv (line 3)") && e.contains("b.csv (line 4)"), "{e}");
        assert!(!out.exists());
        write_csv(&b, &[1, 3, 3]);
        let e = merge_csvs(&inputs(&[&a, &b]), &out, &MergeOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("seq 3 appears twice in ") && e.ends_with("b.csv (lines 3 and 4)"), "{e}");
    }

    #[test]
    fn bad_inputs_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let (a, out) = (dir.path().join("a.csv"), dir.path().join("out.csv"));
        std::fs::write(&a, "seq,url\n1,/\n").unwrap();
        let e = merge_csvs(&inputs(&[&a]), &out, &MergeOptions::default()).unwrap_err().to_string();
        assert!(e.contains("a.csv: header: expected seq,log_line,") && e.ends_with("found seq,url"), "{e}");
        std::fs::write(&a, format!("{}\n{}\n1,2,3\n", HEADER.join(","), row(0))).unwrap();
        let e = merge_csvs(&inputs(&[&a]), &out, &MergeOptions::default()).unwrap_err().to_string();
        assert!(e.ends_with("a.csv: line 3: 3 fields, expected 15"), "{e}");
        std::fs::write(&a, format!("{}\n{}\n", HEADER.join(","), row(0).replacen('0', "x", 1))).unwrap();
        let e = merge_csvs(&inputs(&[&a]), &out, &MergeOptions::default()).unwrap_err().to_string();
        assert!(e.ends_with("line 2: seq: 'x' is not a whole number"), "{e}");
    }

    #[test]
    fn a_shard_without_rows_adds_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (dir.path().join("a.csv"), dir.path().join("b.csv"), dir.path().join("out.csv"));
        write_csv(&a, &[]);
        write_csv(&b, &[3, 1]);
        let stats = merge_csvs(&inputs(&[&a, &b]), &out, &MergeOptions::default()).unwrap();
        assert_eq!(stats.per_input, [0, 2]);
        assert_eq!(seqs_of(&out), [1, 3]);
    }

    #[test]
    fn a_csv_with_other_rows_than_its_manifest_counts_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, out) = (dir.path().join("a.csv"), dir.path().join("out.csv"));
        write_csv(&a, &[0, 1, 2]);
        let input = |expected| [MergeInput { path: a.clone(), expected_rows: Some(expected) }];
        let e = merge_csvs(&input(4), &out, &MergeOptions::default()).unwrap_err().to_string();
        assert!(
            e.ends_with("a.csv: 3 rows, but its manifest counts 4 (sent and not sent): not the CSV the shard wrote"),
            "{e}"
        );
        assert!(!out.exists());
        assert_eq!(merge_csvs(&input(3), &out, &MergeOptions::default()).unwrap().rows, 3);
    }
}
