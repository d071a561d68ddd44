//! Where revisions come from: a git remote (`file://`, https, ssh) and a branch, each commit
//! a revision, read from the commit's tree; or, for development, a local folder whose
//! content is the revision.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Repository};
use sha2::{Digest, Sha256};

use paver_lint::source::{Collected, RawFile};

/// One revision's files.
pub struct Revision {
    /// The commit, or `local-<content hash>` for a folder.
    pub sha: String,
    pub collected: Collected,
}

/// Why a revision could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the branch `{branch}` does not exist in {repo}")]
    NoBranch { repo: String, branch: String },
}

/// A repo given on the command line: a folder on disk, or a git URL.
pub fn is_url(repo: &str) -> bool {
    repo.contains("://") || repo.starts_with("git@")
}

/// Read the revision of a local folder: its files as they are.
pub fn local(path: &Path) -> Result<Revision, SourceError> {
    let collected = paver_lint::source::collect(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut files: Vec<&RawFile> = collected.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for f in files {
        hasher.update(f.path.as_bytes());
        hasher.update([0]);
        hasher.update(&f.bytes);
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let sha = format!(
        "local-{}",
        digest
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Ok(Revision { sha, collected })
}

/// Credentials for private remotes, never from git: https with a token in
/// `PAVER_GIT_TOKEN` (a GitHub token works), ssh with the key in `PAVER_GIT_SSH_KEY` (a
/// path) or else the ssh agent.
fn credentials() -> git2::RemoteCallbacks<'static> {
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.credentials(|_url, username, allowed| {
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            let user = username.unwrap_or("git");
            return match std::env::var_os("PAVER_GIT_SSH_KEY") {
                Some(key) => git2::Cred::ssh_key(user, None, Path::new(&key), None),
                None => git2::Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            if let Ok(token) = std::env::var("PAVER_GIT_TOKEN") {
                return git2::Cred::userpass_plaintext("x-access-token", &token);
            }
        }
        Err(git2::Error::from_str(
            "no credentials: set PAVER_GIT_TOKEN (https) or PAVER_GIT_SSH_KEY / an ssh agent (ssh)",
        ))
    });
    callbacks
}

/// A bare mirror of a remote, kept under the state folder and fetched on every call.
pub struct Remote {
    repo: Repository,
    url: String,
}

impl Remote {
    /// Open (or create) the mirror of `url` in `cache`.
    pub fn open(url: &str, cache: &Path) -> Result<Remote, SourceError> {
        let name: String = Sha256::digest(url.as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = cache.join(name);
        let repo = match Repository::open_bare(&dir) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&dir).map_err(|source| SourceError::Io {
                    path: dir.clone(),
                    source,
                })?;
                Repository::init_bare(&dir)?
            }
        };
        Ok(Remote {
            repo,
            url: url.to_string(),
        })
    }

    /// Fetch `branch` and return its head commit.
    pub fn fetch(&self, branch: &str) -> Result<String, SourceError> {
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let mut options = FetchOptions::new();
        options.remote_callbacks(credentials());
        remote.fetch(&[&refspec], Some(&mut options), None)?;
        let reference = self
            .repo
            .find_reference(&format!("refs/remotes/origin/{branch}"))
            .map_err(|_| SourceError::NoBranch {
                repo: self.url.clone(),
                branch: branch.to_string(),
            })?;
        Ok(reference.peel_to_commit()?.id().to_string())
    }

    /// The full sha of a commit the fetch brought (named by a full or abbreviated sha).
    pub fn resolve(&self, sha: &str) -> Result<String, SourceError> {
        Ok(self
            .repo
            .revparse_single(sha)?
            .peel_to_commit()?
            .id()
            .to_string())
    }

    /// The revision at a commit (a full or abbreviated sha that the fetch brought).
    pub fn revision(&self, sha: &str) -> Result<Revision, SourceError> {
        let commit = self.repo.revparse_single(sha)?.peel_to_commit()?;
        let files = paver_lint::base::read_commit(&self.repo, &commit, Path::new(""))?;
        Ok(Revision {
            sha: commit.id().to_string(),
            collected: Collected {
                files,
                diagnostics: Vec::new(),
            },
        })
    }
}
