//! Reading a platform repo from disk: only the managed folders, never past a symlink that
//! leaves the repo, never a file over the size cap.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::layout::{classify, Role, MANAGED};
use crate::rules::{pv003_resource_limit::ResourceLimit, pv004_symlink_escape::SymlinkEscape};
use crate::rules::{pv005_unexpected_file::UnexpectedFile, Rule as _};
use crate::yaml::{Pos, Span};

/// The largest file paver reads. Specs are a few hundred bytes; a megabyte is generous, and
/// refusing more keeps a stray data dump in a pull request from stalling the check.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A file of the repo as bytes, before decoding: from disk or from a git tree alike.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// Repo-relative, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The files of a repo that paver reads, and what was refused on the way.
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<RawFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Read the managed files below `root`. Fails only when the repo itself cannot be read.
pub fn collect(root: &Path) -> io::Result<Collected> {
    let canonical_root = root.canonicalize()?;
    if !canonical_root.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut out = Collected::default();
    let mut top: Vec<_> = fs::read_dir(&canonical_root)?.collect::<Result<_, _>>()?;
    top.sort_by_key(|e| e.file_name());
    for entry in top {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "paver.yaml" || MANAGED.contains(&name.as_str()) {
            visit(&canonical_root, &entry.path(), &name, &mut out)?;
        }
    }
    Ok(out)
}

fn visit(root: &Path, path: &Path, rel: &str, out: &mut Collected) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let whole = Span::at(Pos::new(1, 1));
    let (target, meta) = if meta.file_type().is_symlink() {
        let target = match path.canonicalize() {
            Ok(t) => t,
            Err(_) => {
                out.diagnostics.push(
                    SymlinkEscape
                        .diagnostic(rel, whole, format!("`{rel}` is a broken symlink"))
                        .help("remove the link, or commit the file it should point to"),
                );
                return Ok(());
            }
        };
        if !target.starts_with(root) {
            out.diagnostics.push(
                SymlinkEscape
                    .diagnostic(
                        rel,
                        whole,
                        format!("`{rel}` is a symlink that leaves the repo (to `{}`)", target.display()),
                    )
                    .help("commit the file itself; paver never reads outside the platform repo"),
            );
            return Ok(());
        }
        let meta = fs::metadata(&target)?;
        if meta.is_dir() {
            out.diagnostics.push(
                SymlinkEscape
                    .diagnostic(rel, whole, format!("`{rel}` is a symlink to a directory, which paver does not follow"))
                    .help("move the directory here instead of linking it"),
            );
            return Ok(());
        }
        (target, meta)
    } else {
        (PathBuf::from(path), meta)
    };
    if meta.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(&target)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            visit(root, &entry.path(), &format!("{rel}/{name}"), out)?;
        }
        return Ok(());
    }
    match classify(rel) {
        Ok(Role::Ignored) => return Ok(()),
        Ok(_) => {}
        Err(misplaced) => {
            out.diagnostics.push(UnexpectedFile.diagnostic(rel, whole, misplaced.reason).help(misplaced.help));
            return Ok(());
        }
    }
    if meta.len() > MAX_FILE_BYTES {
        out.diagnostics.push(
            ResourceLimit
                .diagnostic(
                    rel,
                    whole,
                    format!(
                        "`{rel}` is {:.1} MiB, over paver's {} MiB limit for one file",
                        meta.len() as f64 / (1024.0 * 1024.0),
                        MAX_FILE_BYTES >> 20
                    ),
                )
                .help("a spec or schema is a few kilobytes; split it, or remove data committed by mistake"),
        );
        return Ok(());
    }
    let bytes = fs::read(&target)?;
    out.files.push(RawFile {
        path: rel.to_string(),
        bytes,
    });
    Ok(())
}
