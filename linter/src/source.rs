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
    let mut walk = Walk::default();
    let mut top: Vec<_> = fs::read_dir(&canonical_root)?.collect::<Result<_, _>>()?;
    top.sort_by_key(|e| e.file_name());
    for entry in top {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "paver.yaml" || MANAGED.contains(&name.as_str()) {
            let is_symlink = entry.file_type()?.is_symlink();
            walk.visit(&canonical_root, &entry.path(), &name, is_symlink)?;
        }
    }
    // Reading is most of the cost on a large repo: spread it over the cores.
    let mut out = Collected {
        files: Vec::with_capacity(walk.files.len()),
        diagnostics: walk.diagnostics,
    };
    for result in crate::par::map(&walk.files, |(rel, path)| read(rel, path)) {
        match result? {
            Ok(file) => out.files.push(file),
            Err(diagnostic) => out.diagnostics.push(diagnostic),
        }
    }
    Ok(out)
}

/// Read one file, refusing it unread when it is over the size cap.
fn read(rel: &str, path: &Path) -> io::Result<Result<RawFile, Diagnostic>> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Ok(Err(ResourceLimit
            .diagnostic(
                rel,
                Span::at(Pos::new(1, 1)),
                format!(
                    "`{rel}` is {:.1} MiB, over paver's {} MiB limit for one file",
                    len as f64 / (1024.0 * 1024.0),
                    MAX_FILE_BYTES >> 20
                ),
            )
            .help("a spec or schema is a few kilobytes; split it, or remove data committed by mistake")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while it is read is still cut at the cap.
    io::Read::read_to_end(&mut io::Read::take(&mut file, MAX_FILE_BYTES), &mut bytes)?;
    Ok(Ok(RawFile {
        path: rel.to_string(),
        bytes,
    }))
}

/// The files to read, found by walking the managed folders.
#[derive(Default)]
struct Walk {
    files: Vec<(String, PathBuf)>,
    diagnostics: Vec<Diagnostic>,
}

impl Walk {
    /// Refuse a symlink: PV004 at the link's path.
    fn refuse(&mut self, rel: &str, message: String, help: &str) {
        self.diagnostics.push(
            SymlinkEscape
                .diagnostic(rel, Span::at(Pos::new(1, 1)), message)
                .help(help),
        );
    }

    fn visit(&mut self, root: &Path, path: &Path, rel: &str, is_symlink: bool) -> io::Result<()> {
        let target = if is_symlink {
            let Ok(target) = path.canonicalize() else {
                self.refuse(
                    rel,
                    format!("`{rel}` is a broken symlink"),
                    "remove the link, or commit the file it should point to",
                );
                return Ok(());
            };
            if !target.starts_with(root) {
                self.refuse(
                    rel,
                    format!(
                        "`{rel}` is a symlink that leaves the repo (to `{}`)",
                        target.display()
                    ),
                    "commit the file itself; paver never reads outside the platform repo",
                );
                return Ok(());
            }
            if target.is_dir() {
                self.refuse(
                    rel,
                    format!("`{rel}` is a symlink to a directory, which paver does not follow"),
                    "move the directory here instead of linking it",
                );
                return Ok(());
            }
            target
        } else {
            PathBuf::from(path)
        };
        if !is_symlink && fs::symlink_metadata(&target)?.is_dir() {
            let mut entries: Vec<_> = fs::read_dir(&target)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let file_type = entry.file_type()?;
                let child = format!("{rel}/{name}");
                if file_type.is_dir() {
                    self.visit(root, &entry.path(), &child, false)?;
                } else {
                    self.file(root, entry.path(), child, file_type.is_symlink())?;
                }
            }
            return Ok(());
        }
        self.classify(rel, target);
        Ok(())
    }

    fn file(
        &mut self,
        root: &Path,
        path: PathBuf,
        rel: String,
        is_symlink: bool,
    ) -> io::Result<()> {
        if is_symlink {
            return self.visit(root, &path, &rel, true);
        }
        self.classify(&rel, path);
        Ok(())
    }

    fn classify(&mut self, rel: &str, path: PathBuf) {
        match classify(rel) {
            Ok(Role::Ignored) => {}
            Ok(_) => self.files.push((rel.to_string(), path)),
            Err(misplaced) => self.diagnostics.push(
                UnexpectedFile
                    .diagnostic(rel, Span::at(Pos::new(1, 1)), misplaced.reason)
                    .help(misplaced.help),
            ),
        }
    }
}
