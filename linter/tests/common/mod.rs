//! Helpers shared by the linter's integration tests: real git commits and copies of the
//! example repo.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

/// The example platform repo.
pub fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-repo-example")
}

/// Stage the whole work tree (additions, edits, removals) and commit it on HEAD, after the
/// current HEAD if there is one; returns the commit.
pub fn commit<'r>(repo: &'r git2::Repository, message: &str) -> git2::Commit<'r> {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let who = git2::Signature::now("paver", "paver@example.com").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let id = repo
        .commit(Some("HEAD"), &who, &who, message, &tree, &parents)
        .unwrap();
    repo.find_commit(id).unwrap()
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
