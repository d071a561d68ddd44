//! The released state a pull request is judged against: the platform repo's files at a git
//! ref (`--base origin/main`), read from the object database without a checkout.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use crate::layout::{classify, Role};
use crate::source::{RawFile, MAX_FILE_BYTES};

/// Why the base could not be read. The linter exits 2 on these: it cannot judge the change.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("`{path}` is not inside a git repository: {source}")]
    NotARepository { path: PathBuf, source: git2::Error },
    #[error("the repository at `{0}` has no work tree")]
    Bare(PathBuf),
    #[error("no commit `{base}` in the repository ({source}); in GitHub Actions, check out with `fetch-depth: 0` or fetch the base branch first")]
    UnknownRef { base: String, source: git2::Error },
    #[error("cannot read the tree of `{base}`: {source}")]
    Tree { base: String, source: git2::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The managed files of the platform repo at `base`. `root` is the platform repo's folder in
/// the work tree; it may be a subfolder of the git repository (a monorepo), and the same
/// subfolder is read at the base. A folder that did not exist at the base has no files.
pub fn read(root: &Path, base: &str) -> Result<Vec<RawFile>, BaseError> {
    let repo = Repository::discover(root).map_err(|source| BaseError::NotARepository {
        path: root.to_path_buf(),
        source,
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| BaseError::Bare(root.to_path_buf()))?;
    let prefix = root
        .canonicalize()?
        .strip_prefix(workdir.canonicalize()?)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let commit = repo
        .revparse_single(base)
        .and_then(|o| o.peel_to_commit())
        .map_err(|source| BaseError::UnknownRef {
            base: base.to_string(),
            source,
        })?;
    let tree_error = |source| BaseError::Tree {
        base: base.to_string(),
        source,
    };
    read_commit(&repo, &commit, &prefix).map_err(tree_error)
}

/// The managed files of the platform repo in `prefix` (a folder of the git repository, empty
/// for its root) at a commit. A folder that does not exist there has no files.
pub fn read_commit(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    prefix: &Path,
) -> Result<Vec<RawFile>, git2::Error> {
    let mut tree = commit.tree()?;
    if !prefix.as_os_str().is_empty() {
        match tree.get_path(prefix) {
            Ok(entry) if entry.kind() == Some(ObjectType::Tree) => {
                tree = repo.find_tree(entry.id())?;
            }
            _ => return Ok(Vec::new()),
        }
    }
    let mut wanted = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = entry.name() else {
            return TreeWalkResult::Skip;
        };
        let path = format!("{dir}{name}");
        if entry.kind() == Some(ObjectType::Tree) {
            // Only the managed folders are worth descending into.
            let top = path.split('/').next().unwrap_or_default();
            return if crate::layout::MANAGED.contains(&top) {
                TreeWalkResult::Ok
            } else {
                TreeWalkResult::Skip
            };
        }
        // Symlinks (mode 120000) are not content.
        if entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000 {
            let managed =
                path == "paver.yaml" || classify(&path).is_ok_and(|role| role != Role::Ignored);
            if managed {
                wanted.push((path, entry.id()));
            }
        }
        TreeWalkResult::Ok
    })?;
    let mut files = Vec::with_capacity(wanted.len());
    for (path, id) in wanted {
        let blob = repo.find_blob(id)?;
        if blob.size() as u64 > MAX_FILE_BYTES {
            continue;
        }
        files.push(RawFile {
            path,
            bytes: blob.content().to_vec(),
        });
    }
    Ok(files)
}
