//! The `Examples:` shown under each command's `--help` (clap's `after_help`).

pub const PAVER: &str = "Examples:
  paver plan --repo .                               what would change (nothing is changed)
  paver apply --repo https://git.example.com/platform.git
  paver run --repo https://git.example.com/platform.git --listen 0.0.0.0:8080
  paver status --server http://paver:8080           the active revision and the pipelines";

pub const PLAN: &str = "Examples:
  paver plan --repo .                                the working folder against the state store
  paver plan --repo . --out plan.json                save it for `paver apply --plan plan.json`
  paver plan --repo . --inventory-from http://paver:8080 --format markdown
                                                     a pull request's plan, as a comment";

pub const DOCTOR: &str = "Example:
  PAVER_CLICKHOUSE_URL=https://ch:8443 paver doctor --repo .";

pub const APPLY: &str = "Examples:
  paver apply --repo .                               plan and apply in one go
  paver apply --repo . --plan plan.json              apply a reviewed plan (refused if the world moved)";

pub const RUN: &str = "Examples:
  PAVER_WEBHOOK_SECRET=… paver run --repo https://git.example.com/platform.git \\
      --branch main --listen 0.0.0.0:8080 --state /var/lib/paver/state.db
  PAVER_STATE=postgres://paver@db:5432/paver paver run --repo https://git.example.com/platform.git
                                                     one of several replicas: they elect a leader
                                                     through PostgreSQL (PAVER_STATE_PASSWORD)";

pub const INGEST: &str = "Examples:
  paver ingest --pipeline orders --state /var/lib/paver/state.db
                                  one member of the version's consumer group: run as many as
                                  you like, on any machine; they share the partitions
  paver ingest --pipeline orders --state /var/lib/paver/state.db --assignor range
                                  eager rebalances (for brokers without cooperative-sticky)
  paver ingest --pipeline orders --state /var/lib/paver/state.db --partitions 0,1
                                  a static share: these partitions, no consumer group";

pub const RENDER: &str = "Example:
  paver render --repo . --namespace analytics > rendered.yaml";

pub const WAIT: &str = "Example:
  paver wait --revision $GITHUB_SHA --server http://paver:8080 --timeout 10m";

pub const STATUS: &str = "Examples:
  paver status                                       the local state store, as a summary
  paver status --state postgres://paver@db/paver     a state store in PostgreSQL
  paver status --server http://paver:8080 -o json    a running paver, as JSON";

pub const RETRY: &str = "Example:
  paver retry 3f2c9e1 --server http://paver:8080";

pub const HISTORY: &str = "Examples:
  paver history --limit 5                            the last five attempts, as a table
  paver history --server http://paver:8080 -o json   JSON lines, newest first";
