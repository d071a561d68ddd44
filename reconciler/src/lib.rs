//! paver, the reconciler: pulls the merged platform repo and converges Kafka, ClickHouse
//! and Kubernetes to it, one revision at a time, as a transaction.
//!
//! Not built yet (issue "paver: the reconciler core"). It will load and check each
//! revision with the `paver-lint` library (`paver_lint::lint`, fed the files of a git
//! tree), so that the PR check and the deploy judge a commit the same way.
