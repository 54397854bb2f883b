//! Where the shards given on a command line are: a directory holds shards (every
//! `*.manifest.json` in it), a CSV has its manifest beside it, a manifest names its CSV.

use std::path::{Path, PathBuf};

use super::manifest::{MANIFEST_SUFFIX, Manifest, ManifestError, manifest_path_for};

/// Entries of one directory looked at, at most: a shard directory holds a CSV and a manifest per
/// shard, and a directory far larger than that is not one.
const MAX_DIR_ENTRIES: usize = 100_000;

/// One shard: its manifest and its CSV.
#[derive(Debug, Clone)]
pub struct ShardFile {
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub csv: PathBuf,
}

/// The shards found, and the CSVs found in the directories given that have no manifest (a shard
/// killed before its end leaves its CSV and no manifest).
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub shards: Vec<ShardFile>,
    pub without_manifest: Vec<PathBuf>,
}

/// The manifest beside a results CSV, when there is one; it must name that CSV.
pub fn manifest_beside(csv: &Path) -> Result<Option<ShardFile>, ManifestError> {
    if csv == Path::new("-") {
        return Ok(None);
    }
    let manifest_path = manifest_path_for(csv);
    if !manifest_path.exists() {
        return Ok(None);
    }
    shard_of(&manifest_path, Some(csv)).map(Some)
}

/// Reads a manifest; when it was found beside `csv`, checks that it describes that file.
fn shard_of(manifest_path: &Path, csv: Option<&Path>) -> Result<ShardFile, ManifestError> {
    let manifest = Manifest::read(manifest_path)?;
    let named = manifest.csv_path(manifest_path);
    if let Some(csv) = csv
        && csv.file_name() != named.file_name()
    {
        return Err(ManifestError {
            path: manifest_path.display().to_string(),
            reason: format!("describes {}, not {}", manifest.csv, csv.display()),
        });
    }
    Ok(ShardFile { manifest_path: manifest_path.to_path_buf(), csv: named, manifest })
}

/// The shards in `inputs`: directories (each `*.manifest.json` in them, by name), manifests, and
/// CSVs (which must have a manifest beside them).
pub fn find_shards(inputs: &[PathBuf]) -> Result<Found, ManifestError> {
    let mut found = Found::default();
    for input in inputs {
        let error = |reason: String| ManifestError { path: input.display().to_string(), reason };
        if input.is_dir() {
            let (manifests, csvs) = directory_listing(input).map_err(|e| error(e.to_string()))?;
            for path in manifests {
                found.shards.push(shard_of(&path, None)?);
            }
            found.without_manifest.extend(csvs.into_iter().filter(|csv| !manifest_path_for(csv).exists()));
        } else if input.to_string_lossy().ends_with(MANIFEST_SUFFIX) {
            found.shards.push(shard_of(input, None)?);
        } else if !input.exists() {
            return Err(error("no such file or directory".into()));
        } else {
            match manifest_beside(input)? {
                Some(shard) => found.shards.push(shard),
                None => {
                    return Err(error(format!(
                        "no manifest beside it ({}): only the shards of a run that finished have one",
                        manifest_path_for(input).display()
                    )));
                }
            }
        }
    }
    Ok(found)
}

/// The manifests and the CSVs in a directory and in its subdirectories one level down (a
/// Kubernetes Indexed Job writes each shard to `RUN/INDEX/`), each sorted by path.
fn directory_listing(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut manifests, mut csvs) = (Vec::new(), Vec::new());
    let mut entries = 0;
    for listed in [dir.to_path_buf()].into_iter().chain(subdirectories(dir)?) {
        for entry in std::fs::read_dir(&listed)? {
            entries += 1;
            if entries > MAX_DIR_ENTRIES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_DIR_ENTRIES} entries: not a shard directory"
                )));
            }
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            if name.ends_with(MANIFEST_SUFFIX) {
                manifests.push(path);
            } else if name.ends_with(".csv") {
                csvs.push(path);
            }
        }
    }
    manifests.sort();
    csvs.sort();
    Ok((manifests, csvs))
}

/// The directories directly inside `dir`, hidden ones aside.
fn subdirectories(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir)?.take(MAX_DIR_ENTRIES) {
        let path = entry?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_dir() && !hidden {
            dirs.push(path);
        }
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::sample;
    use super::*;

    #[test]
    fn a_manifest_beside_a_csv_must_name_that_csv() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("renamed.csv");
        std::fs::write(&csv, "").unwrap();
        assert!(manifest_beside(&csv).unwrap().is_none());
        sample(1, 2).write_atomic(&manifest_path_for(&csv)).unwrap();
        let e = manifest_beside(&csv).unwrap_err().to_string();
        assert!(e.contains("renamed.manifest.json: describes shard-1.csv, not ") && e.ends_with("renamed.csv"), "{e}");
    }

    #[test]
    fn a_directory_gives_its_manifests_and_the_csvs_without_one() {
        let dir = tempfile::tempdir().unwrap();
        for i in [1, 0] {
            sample(i, 3).write_atomic(&dir.path().join(format!("shard-{i}{MANIFEST_SUFFIX}"))).unwrap();
            std::fs::write(dir.path().join(format!("shard-{i}.csv")), "").unwrap();
        }
        std::fs::write(dir.path().join("shard-2.csv"), "").unwrap();
        let found = find_shards(&[dir.path().to_path_buf()]).unwrap();
        let indexes: Vec<u32> = found.shards.iter().map(|s| s.manifest.shard.index).collect();
        assert_eq!(indexes, [0, 1]);
        assert_eq!(found.shards[1].csv, dir.path().join("shard-1.csv"));
        assert_eq!(found.without_manifest, [dir.path().join("shard-2.csv")]);
    }

    #[test]
    fn a_directory_of_per_index_directories_gives_their_shards() {
        // The layout of `sluice k8s job`: RUN/0/shard-0.csv, RUN/1/shard-1.csv, …
        let dir = tempfile::tempdir().unwrap();
        for i in [0, 1, 2] {
            let sub = dir.path().join(i.to_string());
            std::fs::create_dir(&sub).unwrap();
            std::fs::write(sub.join(format!("shard-{i}.csv")), "").unwrap();
            if i != 2 {
                sample(i, 3).write_atomic(&sub.join(format!("shard-{i}{MANIFEST_SUFFIX}"))).unwrap();
            }
        }
        let found = find_shards(&[dir.path().to_path_buf()]).unwrap();
        let indexes: Vec<u32> = found.shards.iter().map(|s| s.manifest.shard.index).collect();
        assert_eq!(indexes, [0, 1]);
        assert_eq!(found.shards[1].csv, dir.path().join("1").join("shard-1.csv"));
        assert_eq!(found.without_manifest, [dir.path().join("2").join("shard-2.csv")]);
    }
}
