//! A platform repo loaded for checking: every file decoded, parsed and validated against its
//! JSON Schema, with the indexes the rules need (resources by kind and name, subjects).

use std::collections::BTreeMap;

use crate::avro;
use crate::diagnostic::Diagnostic;
use crate::layout::{classify, Kind, Role};
use crate::rules::pv001_invalid_yaml::InvalidYaml;
use crate::rules::pv002_duplicate_key::DuplicateKey;
use crate::rules::pv003_resource_limit::ResourceLimit;
use crate::rules::pv104_wrong_kind::WrongKind;
use crate::rules::Rule as _;
use crate::schema::{self, SchemaKind};
use crate::source::RawFile;
use crate::sql;
use crate::yaml::{self, Limits, Node, Pos, Span, Style};

/// Index of a file in [`Workspace::files`].
pub type FileId = usize;

/// One file of the repo, as loaded.
#[derive(Debug)]
pub struct File {
    /// Repo-relative, `/`-separated.
    pub path: String,
    pub role: Role,
    /// The decoded text (empty when the file is not UTF-8).
    pub text: String,
    /// The parsed document, when it parses.
    pub root: Option<Node>,
    /// Whether the document passed its JSON Schema (always false when it did not parse).
    pub valid: bool,
    /// A pipeline's transform, analysed while loading (in parallel, as it is the costly part).
    transform: Option<Result<sql::Transform, Vec<sql::Problem>>>,
    /// A pipeline's `sink.partitionKey` and `sink.orderKey`, analysed while loading.
    keys: Vec<(&'static str, Result<Vec<sql::ColumnRef>, sql::Problem>)>,
    /// An Avro file, parsed while loading.
    pub avro: Option<avro::Parsed>,
}

impl File {
    /// Kind, name and version of a spec file.
    pub fn spec(&self) -> Option<(Kind, &str, u32)> {
        match &self.role {
            Role::Spec {
                kind,
                name,
                version,
            } => Some((*kind, name, *version)),
            _ => None,
        }
    }

    /// The node at a path of keys, when the document parsed.
    pub fn at(&self, keys: &[&str]) -> Option<&Node> {
        self.root.as_ref()?.path(keys)
    }
}

/// The versions of one resource: version number → file.
pub type Versions = BTreeMap<u32, FileId>;

/// An Avro subject: its versions and its `subject.yaml`.
#[derive(Debug, Default)]
pub struct Subject {
    pub versions: Versions,
    pub config: Option<FileId>,
}

/// Repo settings from `paver.yaml`, defaults filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    pub default_compatibility: String,
    pub cost_per_memory_gb_month: f64,
    pub disabled: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_compatibility: "FORWARD_TRANSITIVE".to_string(),
            cost_per_memory_gb_month: 0.30,
            disabled: Vec::new(),
        }
    }
}

/// A loaded platform repo.
#[derive(Debug, Default)]
pub struct Workspace {
    pub files: Vec<File>,
    pub settings: Settings,
    /// Every versioned spec, by kind and name (the folder's name).
    pub resources: BTreeMap<Kind, BTreeMap<String, Versions>>,
    pub subjects: BTreeMap<String, Subject>,
    /// Per Avro file: the named types it uses from other subjects' files (name → file,
    /// index of the type in that file).
    pub avro_imports: BTreeMap<FileId, Vec<(String, FileId, usize)>>,
    /// Per Avro file: names it uses that no other subject defines, or that several do
    /// (name, JSON pointer of the first use, the subjects defining it).
    pub avro_unresolved: BTreeMap<FileId, Vec<(String, String, Vec<String>)>>,
    /// What is released: the managed files at `--base`, when one was given.
    pub base: Option<Base>,
    /// What the new versions change, classified (see [`crate::changes`]).
    pub changes: Vec<crate::changes::Change>,
}

/// The released files a pull request is compared with.
#[derive(Debug, Default)]
pub struct Base {
    /// The ref as the user named it (`origin/main`).
    pub name: String,
    /// Path → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Base {
    /// The versions a resource has at the base, by the layout of its paths.
    pub fn versions(&self) -> BTreeMap<(String, String), BTreeMap<u32, String>> {
        let mut out: BTreeMap<(String, String), BTreeMap<u32, String>> = BTreeMap::new();
        for path in self.files.keys() {
            let (folder, name, version) = match classify(path) {
                Ok(Role::Spec {
                    kind,
                    name,
                    version,
                }) => (kind.folder().to_string(), name, version),
                Ok(Role::Avro { subject, version }) => ("schemas".to_string(), subject, version),
                _ => continue,
            };
            out.entry((folder, name))
                .or_default()
                .insert(version, path.clone());
        }
        out
    }
}

impl Workspace {
    /// Load the files (decode, parse, validate), in parallel. Returns the workspace and the
    /// findings of loading.
    pub fn load(raw: Vec<RawFile>) -> (Workspace, Vec<Diagnostic>) {
        let loaded = crate::par::map(&raw, load_file);
        let mut ws = Workspace::default();
        let mut diagnostics = Vec::new();
        for (file, found) in loaded {
            diagnostics.extend(found);
            let id = ws.files.len();
            match &file.role {
                Role::Spec {
                    kind,
                    name,
                    version,
                } => {
                    ws.resources
                        .entry(*kind)
                        .or_default()
                        .entry(name.clone())
                        .or_default()
                        .insert(*version, id);
                }
                Role::Avro { subject, version } => {
                    ws.subjects
                        .entry(subject.clone())
                        .or_default()
                        .versions
                        .insert(*version, id);
                }
                Role::SubjectConfig { subject } => {
                    ws.subjects.entry(subject.clone()).or_default().config = Some(id);
                }
                Role::Settings => {
                    if let (true, Some(root)) = (file.valid, &file.root) {
                        ws.settings = settings_from(root);
                    }
                }
                Role::Ignored => {}
            }
            ws.files.push(file);
        }
        ws.resolve_avro_names();
        (ws, diagnostics)
    }

    /// Resolve the named types an `.avsc` uses but does not define: from the other
    /// subjects of the repo, each at its highest version that defines the name. A name
    /// defined by several subjects is ambiguous.
    fn resolve_avro_names(&mut self) {
        // name -> subject -> (version, file, index), the highest version kept.
        let mut defined: BTreeMap<&str, BTreeMap<&str, (u32, FileId, usize)>> = BTreeMap::new();
        for (subject, s) in &self.subjects {
            for (version, id) in &s.versions {
                let Some(parsed) = &self.files[*id].avro else {
                    continue;
                };
                for (name, index) in &parsed.by_name {
                    defined
                        .entry(name)
                        .or_default()
                        .insert(subject, (*version, *id, *index));
                }
            }
        }
        let mut imports = BTreeMap::new();
        let mut unresolved = BTreeMap::new();
        for (subject, s) in &self.subjects {
            for id in s.versions.values() {
                let Some(parsed) = &self.files[*id].avro else {
                    continue;
                };
                for (name, pointer) in &parsed.external {
                    let others: Vec<_> = defined
                        .get(name.as_str())
                        .into_iter()
                        .flatten()
                        .filter(|(other, _)| **other != subject.as_str())
                        .collect();
                    match others.as_slice() {
                        [(_, (_, file, index))] => imports
                            .entry(*id)
                            .or_insert_with(Vec::new)
                            .push((name.clone(), *file, *index)),
                        _ => unresolved.entry(*id).or_insert_with(Vec::new).push((
                            name.clone(),
                            pointer.clone(),
                            others.iter().map(|(s, _)| s.to_string()).collect(),
                        )),
                    }
                }
            }
        }
        self.avro_imports = imports;
        self.avro_unresolved = unresolved;
    }

    /// Every parsed Avro file in one universe, cross-file names resolved; and the map from
    /// file id to universe index.
    pub fn avro_universe(&self) -> (avro::Universe<'_>, BTreeMap<FileId, usize>) {
        let mut universe = avro::Universe::default();
        let mut index = BTreeMap::new();
        for (id, file) in self.files.iter().enumerate() {
            if let Some(parsed) = &file.avro {
                index.insert(id, universe.add(parsed));
            }
        }
        for (id, names) in &self.avro_imports {
            let Some(at) = index.get(id) else { continue };
            for (name, file, type_index) in names {
                if let Some(target) = index.get(file) {
                    universe.imports[*at].insert(
                        name.clone(),
                        avro::NamedRef {
                            file: *target,
                            index: *type_index,
                        },
                    );
                }
            }
        }
        (universe, index)
    }

    /// The versions of a resource, if the repo has it.
    pub fn resource(&self, kind: Kind, name: &str) -> Option<&Versions> {
        self.resources.get(&kind).and_then(|r| r.get(name))
    }

    /// Every spec file of a kind that passed its schema: (file, its document).
    pub fn specs(&self, kind: Kind) -> impl Iterator<Item = (&File, &Node)> {
        self.resources
            .get(&kind)
            .into_iter()
            .flat_map(|names| names.values())
            .flat_map(|versions| versions.values())
            .filter_map(|id| {
                let file = &self.files[*id];
                match (&file.root, file.valid) {
                    (Some(root), true) => Some((file, root)),
                    _ => None,
                }
            })
    }

    /// The active (highest) version of every resource of a kind that passed its schema.
    /// Warnings look only at these: a released older version can never be edited, so a
    /// warning on it could never be acted upon.
    pub fn active_specs(&self, kind: Kind) -> impl Iterator<Item = (&File, &Node)> {
        self.resources
            .get(&kind)
            .into_iter()
            .flat_map(|names| names.values())
            .filter_map(|versions| versions.values().next_back())
            .filter_map(|id| {
                let file = &self.files[*id];
                match (&file.root, file.valid) {
                    (Some(root), true) => Some((file, root)),
                    _ => None,
                }
            })
    }

    /// Whether a spec file is the active (highest) version of its resource.
    pub fn is_active(&self, file: &File) -> bool {
        file.spec().is_some_and(|(kind, name, version)| {
            self.resource(kind, name)
                .and_then(|v| v.keys().next_back())
                .is_some_and(|highest| *highest == version)
        })
    }

    /// The analysis of a pipeline file's transform, when it has one.
    pub fn transform<'a>(
        &self,
        file: &'a File,
    ) -> Option<&'a Result<sql::Transform, Vec<sql::Problem>>> {
        file.transform.as_ref()
    }

    /// The analysis of a pipeline file's `sink.partitionKey` or `sink.orderKey`, when it has one.
    pub fn key<'a>(
        &self,
        file: &'a File,
        key: &str,
    ) -> Option<&'a Result<Vec<sql::ColumnRef>, sql::Problem>> {
        file.keys.iter().find(|(k, _)| *k == key).map(|(_, r)| r)
    }

    /// The top-level record fields of an Avro file, when it parsed cleanly with a record at
    /// the top (PV501 reports the others).
    pub fn avro_fields<'a>(&self, file: &'a File) -> Option<&'a [avro::Field]> {
        let parsed = file.avro.as_ref()?;
        if !parsed.problems.is_empty() {
            return None;
        }
        parsed.record_fields()
    }

    /// The Avro file a `<subject>@<version>` reference names.
    pub fn schema_ref(&self, reference: &str) -> Option<&File> {
        self.schema_ref_id(reference).map(|id| &self.files[id])
    }

    /// The id of the Avro file a `<subject>@<version>` reference names.
    pub fn schema_ref_id(&self, reference: &str) -> Option<FileId> {
        let (subject, version) = reference.rsplit_once('@')?;
        let version: u32 = version.parse().ok()?;
        self.subjects.get(subject)?.versions.get(&version).copied()
    }
}

fn settings_from(root: &Node) -> Settings {
    let mut s = Settings::default();
    if let Some(mode) = root
        .path(&["defaults", "compatibility"])
        .and_then(Node::as_str)
    {
        s.default_compatibility = mode.to_string();
    }
    if let Some(cost) = root
        .path(&["lint", "costPerMemoryGBMonth"])
        .and_then(Node::as_f64)
    {
        s.cost_per_memory_gb_month = cost;
    }
    if let Some(disabled) = root.path(&["lint", "disable"]) {
        s.disabled = disabled
            .as_seq()
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
    }
    s
}

fn load_file(raw: &RawFile) -> (File, Vec<Diagnostic>) {
    let role = classify(&raw.path).unwrap_or(Role::Ignored);
    let mut file = File {
        path: raw.path.clone(),
        role,
        text: String::new(),
        root: None,
        valid: false,
        transform: None,
        keys: Vec::new(),
        avro: None,
    };
    let mut found = Vec::new();
    match std::str::from_utf8(&raw.bytes) {
        Ok(text) => file.text = text.to_string(),
        Err(e) => {
            let valid = std::str::from_utf8(&raw.bytes[..e.valid_up_to()]).unwrap_or_default();
            let line = valid.matches('\n').count() as u32 + 1;
            let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            found.push(
                InvalidYaml
                    .diagnostic(
                        &raw.path,
                        Span::at(Pos::new(line, col)),
                        format!(
                            "the file is not UTF-8 (invalid byte 0x{:02X})",
                            raw.bytes[e.valid_up_to()]
                        ),
                    )
                    .help("save the file as UTF-8"),
            );
            return (file, found);
        }
    }
    let is_json = matches!(file.role, Role::Avro { .. });
    let loaded = if is_json {
        // Avro schemas are strict JSON (no comments, single quotes, trailing commas).
        crate::json::load(&file.text, Limits::default())
    } else {
        yaml::load(&file.text, Limits::default())
    };
    let root = match loaded {
        Ok(root) => root,
        Err(e) => {
            let what = if raw.path.ends_with(".avsc") {
                "JSON"
            } else {
                "YAML"
            };
            let d = match e.kind {
                yaml::ErrorKind::Syntax => {
                    let help = if e.message.contains("empty") {
                        "write the spec here, or remove the file"
                    } else if e.message.contains("second YAML document") {
                        "one file is one version: put the second document in its own `v<N>.yaml`"
                    } else if e.message.contains("tag") {
                        "write the value itself: paver does not expand tags or environment variables"
                    } else if is_json {
                        "an .avsc file is plain JSON: no comments, no trailing commas, double quotes only"
                    } else {
                        "check the indentation and quoting on this line and the one before it"
                    };
                    InvalidYaml
                        .diagnostic(&raw.path, e.span, format!("invalid {what}: {}", e.message))
                        .help(help)
                }
                yaml::ErrorKind::DuplicateKey { first } => DuplicateKey
                    .diagnostic(&raw.path, e.span, e.message)
                    .label("written again here")
                    .related(&raw.path, first, "first written here")
                    .help("keep one of them: a later duplicate would silently win in other tools"),
                yaml::ErrorKind::Budget if e.message.contains("nesting") => ResourceLimit
                    .diagnostic(&raw.path, e.span, e.message)
                    .help("no paver spec nests this deep; flatten the document"),
                yaml::ErrorKind::Budget => ResourceLimit
                    .diagnostic(&raw.path, e.span, e.message)
                    .help("write the values out; anchors and aliases that expand this far are a denial of service"),
            };
            found.push(d);
            return (file, found);
        }
    };
    let schema_kind = match &file.role {
        Role::Settings => Some(SchemaKind::Settings),
        Role::SubjectConfig { .. } => Some(SchemaKind::Subject),
        Role::Spec { kind, .. } => {
            let written = root.get("kind");
            match written.and_then(Node::as_str) {
                Some(k) if k != kind.name() && Kind::from_name(k).is_some() => {
                    let span = written.map_or(root.span, |n| n.span);
                    found.push(
                        WrongKind
                            .diagnostic(
                                &raw.path,
                                span,
                                format!(
                                    "a `{k}` in `{}/`, which holds `{}` specs",
                                    kind.folder(),
                                    kind.name()
                                ),
                            )
                            .help(format!(
                                "move the file to `{}/`, or set `kind: {}`",
                                Kind::from_name(k).map_or("", Kind::folder),
                                kind.name()
                            )),
                    );
                    None
                }
                _ => Some(match kind {
                    Kind::KafkaTopic => SchemaKind::KafkaTopic,
                    Kind::ClickHouseCluster => SchemaKind::ClickHouseCluster,
                    Kind::DataPipeline => SchemaKind::DataPipeline,
                }),
            }
        }
        Role::Avro { .. } | Role::Ignored => None,
    };
    match schema_kind {
        Some(kind) => {
            let problems = schema::validate(kind, &root, &raw.path);
            file.valid = problems.is_empty();
            found.extend(problems);
        }
        None => file.valid = matches!(file.role, Role::Avro { .. }),
    }
    if file.valid {
        match &file.role {
            Role::Spec {
                kind: Kind::DataPipeline,
                ..
            } => {
                if let Some(query) = root
                    .path(&["spec", "transform", "query"])
                    .and_then(Node::as_str)
                {
                    file.transform = Some(sql::analyze_transform(query));
                }
                for key in ["partitionKey", "orderKey", "shardingKey"] {
                    if let Some(text) = root.path(&["spec", "sink", key]).and_then(Node::as_str) {
                        file.keys.push((key, sql::analyze_key(text)));
                    }
                }
            }
            Role::Avro { .. } => file.avro = Some(avro::parse(&root)),
            _ => {}
        }
    }
    file.root = Some(root);
    (file, found)
}

/// Map a position inside a string scalar (a SQL query, say) to the file: exact for one-line
/// scalars and literal blocks, the scalar's start otherwise.
pub fn position_in_scalar(file: &File, node: &Node, line: u32, col: u32) -> Pos {
    let yaml::Value::Str(_, style) = &node.value else {
        return node.span.start;
    };
    match style {
        Style::Literal => {
            // The content starts on the line after the `|` or `>` indicator (where the
            // parser may or may not have put the scalar's start), at the block's indent.
            let lines: Vec<&str> = file.text.lines().collect();
            let start = node.span.start;
            let on_indicator = lines
                .get(start.line as usize - 1)
                .and_then(|l| l.chars().nth(start.col as usize - 1))
                .is_some_and(|c| c == '|' || c == '>');
            let first = if on_indicator {
                start.line + 1
            } else {
                start.line
            };
            let file_line = first + line - 1;
            let indent = |n: u32| {
                lines
                    .get(n as usize - 1)
                    .map(|l| l.chars().take_while(|c| *c == ' ').count() as u32)
            };
            match indent(first) {
                Some(block_indent) if indent(file_line).is_some() => {
                    Pos::new(file_line, block_indent + col)
                }
                _ => start,
            }
        }
        // On one line, the source text is the value itself unless escapes changed it: trust
        // the position only where the value's text stands in the line as written.
        Style::Plain | Style::Quoted if line == 1 => {
            let quote = u32::from(*style == Style::Quoted);
            let start = node.span.start;
            let written = file.text.lines().nth(start.line as usize - 1).map(|l| {
                l.chars()
                    .skip((start.col - 1 + quote) as usize)
                    .collect::<String>()
            });
            match (written, &node.value) {
                (Some(w), yaml::Value::Str(value, _)) if w.starts_with(value.as_str()) => {
                    Pos::new(start.line, start.col + quote + col - 1)
                }
                _ => start,
            }
        }
        _ => node.span.start,
    }
}
