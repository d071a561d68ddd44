//! What a pipeline's SQL may be: a transform is exactly one `SELECT … FROM source`, and the
//! sink's keys are single expressions over its output. Parsed with `sqlparser`'s ClickHouse
//! dialect; whatever paver later writes into DDL is rendered from the parsed tree, never
//! pasted from the user's text.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Spanned,
    Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// A position inside the SQL text, 1-based, and how many characters the token there has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SqlPos {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

/// Why a query or key is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Option<SqlPos>,
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    fn new(pos: Option<SqlPos>, message: impl Into<String>) -> Self {
        Problem {
            pos,
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A column read from `source`, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub name: String,
    pub pos: Option<SqlPos>,
}

/// What a valid transform reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transform {
    /// Columns of `source` it reads (aliases defined in the SELECT and lambda parameters excluded).
    pub reads: Vec<ColumnRef>,
    /// Named output columns, in order.
    pub outputs: Vec<String>,
    /// For each output, the source column it copies when it is a bare column reference
    /// (`userId`, `source.userId`, `userId AS id`): its type is the field's.
    pub copies: Vec<Option<String>>,
    /// `SELECT *` or `source.*`: every column of the source is output as well.
    pub wildcard: bool,
}

/// The longest recursion the parser may go into: deep enough for any real query, shallow
/// enough that a hostile one cannot exhaust the stack.
const RECURSION_LIMIT: usize = 40;

/// Table functions and functions that read or wait on something other than the stream.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "file",
    "url",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "s3",
    "s3cluster",
    "hdfs",
    "gcs",
    "azureblobstorage",
    "mysql",
    "postgresql",
    "mongodb",
    "redis",
    "sqlite",
    "jdbc",
    "odbc",
    "input",
    "executable",
    "numbers",
    "zeros",
    "generaterandom",
    "merge",
    "dictionary",
    "sleep",
    "sleepeachrow",
    "joinget",
    "joingetornull",
];

fn forbidden_function(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    FORBIDDEN_FUNCTIONS.contains(&name.as_str())
        || name.starts_with("dictget")
        || name.starts_with("dicthas")
}

fn pos_of(span: sqlparser::tokenizer::Span) -> Option<SqlPos> {
    let len = if span.end.line == span.start.line && span.end.column > span.start.column {
        (span.end.column - span.start.column) as u32
    } else {
        1
    };
    (span.start.line > 0).then_some(SqlPos {
        line: span.start.line as u32,
        col: span.start.column as u32,
        len,
    })
}

/// Pull `Line: L, Column: C` out of a parser error.
fn parse_error(e: ParserError) -> Problem {
    let text = e.to_string();
    let number_after = |label: &str| -> Option<u32> {
        let rest = &text[text.find(label)? + label.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let pos = match (number_after("Line:"), number_after("Column:")) {
        (Some(line), Some(col)) => Some(SqlPos { line, col, len: 1 }),
        _ => None,
    };
    let message = text
        .strip_prefix("sql parser error: ")
        .unwrap_or(&text)
        .split(" at Line:")
        .next()
        .unwrap_or(&text)
        .to_string();
    Problem::new(pos, format!("the SQL does not parse: {message}"))
}

/// Check a transform and report what it reads and writes.
pub fn analyze_transform(query: &str) -> Result<Transform, Vec<Problem>> {
    let dialect = ClickHouseDialect {};
    let statements = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(query)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| vec![parse_error(e)])?;
    let mut problems = Vec::new();
    let statement = match statements.as_slice() {
        [] => return Err(vec![Problem::new(None, "the query is empty")]),
        [one] => one,
        [first, second, ..] => {
            let pos = pos_of(second.span()).or_else(|| {
                let end = first.span().end;
                (end.line > 0).then_some(SqlPos {
                    line: end.line as u32,
                    col: end.column as u32,
                    len: 1,
                })
            });
            return Err(vec![Problem::new(
                pos,
                format!(
                    "{} statements: a transform is exactly one SELECT",
                    statements.len()
                ),
            )
            .help("remove everything after the first statement's `;`")]);
        }
    };
    let query = match statement {
        Statement::Query(q) => q,
        other => {
            return Err(vec![Problem::new(
                pos_of(other.span()),
                "a transform is a SELECT; this is another kind of statement",
            )])
        }
    };
    check_query_clauses(query, &mut problems);
    let select = match query.body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { .. } => {
            problems.push(
                Problem::new(
                    pos_of(query.body.span()),
                    "UNION, EXCEPT and INTERSECT are not allowed in a transform",
                )
                .help("a pipeline reads one stream; split the logic into two pipelines"),
            );
            return Err(problems);
        }
        other => {
            problems.push(Problem::new(
                pos_of(other.span()),
                "a transform is a plain `SELECT … FROM source`",
            ));
            return Err(problems);
        }
    };
    if let Some(into) = &select.into {
        problems.push(Problem::new(
            pos_of(into.span()),
            "SELECT … INTO is not allowed in a transform",
        ));
    }
    match select.from.as_slice() {
        [] => problems.push(
            Problem::new(
                pos_of(select.select_token.0.span),
                "the transform does not read `FROM source`",
            )
            .help("write `SELECT … FROM source`"),
        ),
        [table] => {
            check_table(&table.relation, &mut problems);
            if let Some(join) = table.joins.first() {
                problems.push(
                    Problem::new(pos_of(join.relation.span()), "JOIN is not allowed in a transform")
                        .help("a transform reads only the stream `source`; enrich in ClickHouse after ingestion"),
                );
            }
        }
        [_, second, ..] => problems.push(Problem::new(
            pos_of(second.relation.span()),
            "a transform reads only `source`, not several tables",
        )),
    }
    // Everything else about the query: no other relation, no subquery, no forbidden function.
    let mut guard = Guard::new("a transform");
    let _ = query.visit(&mut guard);
    problems.extend(guard.problems);

    let mut out = Transform::default();
    let mut seen = BTreeSet::new();
    for item in &select.projection {
        let (name, pos, copies) = match item {
            SelectItem::UnnamedExpr(Expr::Identifier(id)) => {
                (id.value.clone(), pos_of(id.span), Some(id.value.clone()))
            }
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => match parts.last() {
                Some(id) => (id.value.clone(), pos_of(id.span), source_column(parts)),
                None => continue,
            },
            SelectItem::ExprWithAlias { alias, expr } => {
                let copies = match expr {
                    Expr::Identifier(id) => Some(id.value.clone()),
                    Expr::CompoundIdentifier(parts) => source_column(parts),
                    _ => None,
                };
                (alias.value.clone(), pos_of(alias.span), copies)
            }
            SelectItem::Wildcard(_) => {
                out.wildcard = true;
                continue;
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _)
                if is_source(name) =>
            {
                out.wildcard = true;
                continue;
            }
            SelectItem::UnnamedExpr(expr) => {
                problems.push(
                    Problem::new(
                        pos_of(expr.span()),
                        format!("the output column `{expr}` has no name"),
                    )
                    .help("name it with `AS <column>`: the name becomes the sink table's column"),
                );
                continue;
            }
            other => {
                problems.push(Problem::new(
                    pos_of(other.span()),
                    format!("unsupported select item `{other}`"),
                ));
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            problems.push(Problem::new(
                pos,
                format!("the output column `{name}` is named twice"),
            ));
        }
        out.outputs.push(name);
        out.copies.push(copies);
    }
    let mut reads = Reads::default();
    let _ = query.visit(&mut reads);
    // A name that is an alias of the SELECT refers to that alias, except inside the
    // aliased expression itself: in `upper(currency) AS currency`, `currency` is the column.
    let aliases: Vec<(&str, sqlparser::tokenizer::Span)> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => Some((alias.value.as_str(), expr.span())),
            _ => None,
        })
        .collect();
    let inside = |pos: Option<SqlPos>, span: sqlparser::tokenizer::Span| match pos {
        Some(p) => {
            let at = (u64::from(p.line), u64::from(p.col));
            (span.start.line, span.start.column) <= at && at <= (span.end.line, span.end.column)
        }
        None => false,
    };
    out.reads = reads
        .columns
        .into_iter()
        .filter(|c| {
            !reads.lambda_params.contains(&c.name)
                && aliases
                    .iter()
                    .filter(|(alias, _)| *alias == c.name)
                    .all(|(_, span)| inside(c.pos, *span))
        })
        .collect();
    if problems.is_empty() {
        Ok(out)
    } else {
        // One finding per place: a table function is also "another relation".
        let mut seen = BTreeSet::new();
        problems.retain(|p| p.pos.is_none() || seen.insert(p.pos));
        Err(problems)
    }
}

/// `source.x` is the column x; `x.y` (a tuple's element) is not a plain copy.
fn source_column(parts: &[sqlparser::ast::Ident]) -> Option<String> {
    match parts {
        [first, second] if first.value == "source" => Some(second.value.clone()),
        _ => None,
    }
}

fn check_query_clauses(query: &Query, problems: &mut Vec<Problem>) {
    if let Some(with) = &query.with {
        problems.push(
            Problem::new(
                pos_of(with.with_token.0.span),
                "WITH is not allowed in a transform",
            )
            .help("write the expressions inline in the SELECT"),
        );
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        problems.push(
            Problem::new(pos_of(query.span()), "LIMIT is not allowed in a transform")
                .help("a transform runs on every inserted block; LIMIT would drop rows at random"),
        );
    }
    if let Some(settings) = &query.settings {
        let pos = settings.first().map(|s| pos_of(s.key.span)).unwrap_or(None);
        problems.push(
            Problem::new(pos, "SETTINGS is not allowed in a transform")
                .help("server settings belong to the cluster's configuration, not to a pipeline"),
        );
    }
    if query.format_clause.is_some() {
        problems.push(Problem::new(
            pos_of(query.span()),
            "FORMAT is not allowed in a transform",
        ));
    }
    if !query.locks.is_empty() || query.for_clause.is_some() || !query.pipe_operators.is_empty() {
        problems.push(Problem::new(
            pos_of(query.span()),
            "this clause is not allowed in a transform",
        ));
    }
}

fn is_source(name: &ObjectName) -> bool {
    name.0.len() == 1 && name.0[0].as_ident().is_some_and(|id| id.value == "source")
}

fn check_table(factor: &TableFactor, problems: &mut Vec<Problem>) {
    match factor {
        TableFactor::Table {
            name, args: None, ..
        } if is_source(name) => {}
        TableFactor::Table {
            name,
            args: Some(_),
            ..
        } => problems.push(
            Problem::new(
                pos_of(factor.span()),
                format!("the table function `{name}` is not allowed"),
            )
            .help("a transform reads only the stream `source`"),
        ),
        TableFactor::Table { .. } => {} // reported by the guard, with every other relation
        TableFactor::Derived { .. } => problems.push(
            Problem::new(pos_of(factor.span()), "a subquery in FROM is not allowed")
                .help("write `SELECT … FROM source` directly"),
        ),
        TableFactor::TableFunction { .. } | TableFactor::Function { .. } => problems.push(
            Problem::new(pos_of(factor.span()), "table functions are not allowed")
                .help("a transform reads only the stream `source`"),
        ),
        other => problems.push(Problem::new(
            pos_of(other.span()),
            "a transform reads `FROM source` and nothing else",
        )),
    }
}

/// Finds other relations, subqueries and forbidden functions anywhere in the query.
struct Guard {
    /// What is being checked, for messages: "a transform", "a key".
    context: &'static str,
    queries: usize,
    problems: Vec<Problem>,
}

impl Guard {
    fn new(context: &'static str) -> Self {
        Guard {
            context,
            queries: 0,
            problems: Vec::new(),
        }
    }
}

impl Visitor for Guard {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.queries += 1;
        if self.queries > 1 {
            self.problems.push(
                Problem::new(
                    pos_of(query.span()),
                    format!("subqueries are not allowed in {}", self.context),
                )
                .help("it is computed row by row, from the row's own columns"),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !is_source(relation) {
            self.problems.push(
                Problem::new(
                    pos_of(relation.span()),
                    format!("{} may not read `{relation}`", self.context),
                )
                .help("a transform reads only the stream named `source`"),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            let name = f.name.to_string();
            if forbidden_function(&name) {
                self.problems.push(
                    Problem::new(
                        pos_of(f.name.span()),
                        format!("the function `{name}` is not allowed in {}", self.context),
                    )
                    .help("it reads data from outside the row, or stalls ingestion"),
                );
            }
        }
        ControlFlow::Continue(())
    }
}

/// Collects the columns an expression tree reads.
#[derive(Default)]
struct Reads {
    columns: Vec<ColumnRef>,
    lambda_params: BTreeSet<String>,
}

impl Visitor for Reads {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(id) => self.columns.push(ColumnRef {
                name: id.value.clone(),
                pos: pos_of(id.span),
            }),
            Expr::CompoundIdentifier(parts) => {
                // `source.userId` reads userId; `address.city` reads the column address.
                let id = match parts.as_slice() {
                    [first, second, ..] if first.value == "source" => second,
                    [first, ..] => first,
                    [] => return ControlFlow::Continue(()),
                };
                self.columns.push(ColumnRef {
                    name: id.value.clone(),
                    pos: pos_of(id.span),
                });
            }
            Expr::Lambda(lambda) => {
                for p in lambda.params.iter() {
                    self.lambda_params.insert(p.name.value.clone());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// A key as the parser renders it (what paver writes into DDL), when it is valid.
pub fn render_key(text: &str) -> Option<String> {
    analyze_key(text).ok()?;
    let dialect = ClickHouseDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .ok()?;
    Some(parser.parse_expr().ok()?.to_string())
}

/// A transform as the parser renders it, when it is valid.
pub fn render_query(text: &str) -> Option<String> {
    analyze_transform(text).ok()?;
    let statements = Parser::parse_sql(&ClickHouseDialect {}, text).ok()?;
    Some(statements.first()?.to_string())
}

/// A transform rendered to read from `database.table` (named `source` in the query, so
/// that `source.column` still resolves), when it is valid.
pub fn render_query_over(text: &str, database: &str, table: &str) -> Option<String> {
    use sqlparser::ast::{Ident, TableAlias};
    analyze_transform(text).ok()?;
    let mut statements = Parser::parse_sql(&ClickHouseDialect {}, text).ok()?;
    let Statement::Query(query) = statements.first_mut()? else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let TableFactor::Table { name, alias, .. } = &mut select.from.first_mut()?.relation else {
        return None;
    };
    *name = ObjectName::from(vec![
        Ident::with_quote('`', database),
        Ident::with_quote('`', table),
    ]);
    *alias = Some(TableAlias {
        explicit: true,
        name: Ident::new("source"),
        columns: Vec::new(),
        at: None,
    });
    Some(statements[0].to_string())
}

/// The query of a materialized view that runs a transform over a staging table: the
/// transform read from `database.table` (named `source`), a `*` expanded to the source's
/// columns (the staging table also has paver's bookkeeping columns, which must not reach
/// the sink), and `extra` items appended (`(expression, name)`: the sink's columns the
/// transform does not fill, at their defaults). Without a transform, the source's columns.
pub fn render_view_query(
    text: Option<&str>,
    database: &str,
    table: &str,
    source_columns: &[String],
    extra: &[(String, String)],
) -> Option<String> {
    use sqlparser::ast::Ident;
    let text = match text {
        Some(t) => t.to_string(),
        None => {
            let list: Vec<String> = source_columns.iter().map(|c| quote_ident(c)).collect();
            format!("SELECT {} FROM source", list.join(", "))
        }
    };
    let rendered = render_query_over(&text, database, table)?;
    let mut statements = Parser::parse_sql(&ClickHouseDialect {}, &rendered).ok()?;
    let Statement::Query(query) = statements.first_mut()? else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let columns = |qualified: bool| -> Vec<SelectItem> {
        source_columns
            .iter()
            .map(|c| {
                let ident = Ident::with_quote('`', c);
                SelectItem::UnnamedExpr(if qualified {
                    Expr::CompoundIdentifier(vec![Ident::new("source"), ident])
                } else {
                    Expr::Identifier(ident)
                })
            })
            .collect()
    };
    let mut projection = Vec::new();
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::Wildcard(_) => projection.extend(columns(false)),
            SelectItem::QualifiedWildcard(..) => projection.extend(columns(true)),
            other => projection.push(other),
        }
    }
    let dialect = ClickHouseDialect {};
    for (expr, name) in extra {
        let mut parser = Parser::new(&dialect)
            .with_recursion_limit(RECURSION_LIMIT)
            .try_with_sql(expr)
            .ok()?;
        let expr = parser.parse_expr().ok()?;
        if parser.peek_token().token != Token::EOF {
            return None;
        }
        projection.push(SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('`', name),
        });
    }
    select.projection = projection;
    Some(statements[0].to_string())
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// Check a `partitionKey` or `orderKey`: one expression, no subquery, no forbidden function.
/// Returns the columns it reads.
pub fn analyze_key(text: &str) -> Result<Vec<ColumnRef>, Problem> {
    let dialect = ClickHouseDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .map_err(parse_error)?;
    let expr = parser.parse_expr().map_err(parse_error)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(Problem::new(
            pos_of(next.span),
            format!("unexpected `{}` after the expression", next.token),
        )
        .help("a key is one expression: a column, a function of columns, or a tuple `(a, b)`"));
    }
    let mut guard = Guard::new("a key");
    // A key has no query of its own: any query inside it is a subquery.
    guard.queries = 1;
    let _ = expr.visit(&mut guard);
    if let Some(problem) = guard.problems.into_iter().next() {
        return Err(problem);
    }
    let mut reads = Reads::default();
    let _ = expr.visit(&mut reads);
    let params = reads.lambda_params;
    Ok(reads
        .columns
        .into_iter()
        .filter(|c| !params.contains(&c.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_queries_expand_the_wildcard_and_append_defaults() {
        let cols = ["a".to_string(), "b".to_string()];
        let extra = [(
            "assumeNotNull(CAST(NULL, 'Nullable(Map(String, String))'))".to_string(),
            "c".to_string(),
        )];
        let q = render_view_query(
            Some("SELECT *, a + 1 AS n FROM source WHERE b != 'x'"),
            "db",
            "stg",
            &cols,
            &extra,
        )
        .unwrap();
        assert_eq!(q, "SELECT `a`, `b`, a + 1 AS n, assumeNotNull(CAST(NULL, 'Nullable(Map(String, String))')) AS `c` FROM `db`.`stg` AS source WHERE b <> 'x'");
        let q = render_view_query(Some("SELECT source.* FROM source"), "db", "stg", &cols, &[])
            .unwrap();
        assert_eq!(q, "SELECT source.`a`, source.`b` FROM `db`.`stg` AS source");
        let q = render_view_query(None, "db", "stg", &cols, &[]).unwrap();
        assert_eq!(q, "SELECT `a`, `b` FROM `db`.`stg` AS source");
        // An expression that is not one is refused, never pasted.
        let bad = [("1) FROM x; DROP TABLE y --".to_string(), "c".to_string())];
        assert!(render_view_query(None, "db", "stg", &cols, &bad).is_none());
    }

    const DESIGN_QUERY: &str = "SELECT userId, eventType, eventTime, properties, now() AS ingestedAt\nFROM source\nWHERE eventType NOT IN ('healthcheck', 'keepalive')\n";

    fn problems(query: &str) -> Vec<String> {
        analyze_transform(query)
            .expect_err("must be refused")
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn the_design_example_is_a_valid_transform() {
        let t = analyze_transform(DESIGN_QUERY).unwrap();
        assert_eq!(
            t.outputs,
            [
                "userId",
                "eventType",
                "eventTime",
                "properties",
                "ingestedAt"
            ]
        );
        let reads: BTreeSet<_> = t.reads.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            reads,
            BTreeSet::from(["userId", "eventType", "eventTime", "properties"])
        );
        let first = t.reads.iter().find(|c| c.name == "eventType").unwrap();
        assert_eq!(
            first.pos,
            Some(SqlPos {
                line: 1,
                col: 16,
                len: 9
            })
        );
    }

    #[test]
    fn aliases_lambdas_and_qualified_columns() {
        let t = analyze_transform(
            "SELECT source.a AS a2, arrayMap(x -> x * 2, b) AS doubled, lower(c) AS lc FROM source WHERE lc != ''",
        )
        .unwrap();
        let reads: BTreeSet<_> = t.reads.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(reads, BTreeSet::from(["a", "b", "c"]));
        // The aliased expression's own name is the column it reads; elsewhere, the alias.
        let t = analyze_transform(
            "SELECT upper(currency) AS currency FROM source WHERE currency != ''",
        )
        .unwrap();
        assert_eq!(t.reads.len(), 1);
        assert_eq!(t.reads[0].pos.map(|p| p.col), Some(14));
        assert!(analyze_transform("SELECT * FROM source").unwrap().wildcard);
    }

    #[test]
    fn refuses_everything_but_one_select_over_source() {
        assert!(
            problems("SELECT a FROM source; DROP TABLE analytics.user_events")[0]
                .contains("2 statements")
        );
        assert!(problems("DROP TABLE x")[0].contains("another kind of statement"));
        assert!(problems("SELECT a FROM other")[0].contains("may not read `other`"));
        assert!(
            problems("SELECT a FROM url('http://x', CSV, 'a String')")[0]
                .contains("table function")
        );
        assert!(problems("SELECT a FROM source SETTINGS max_threads = 1")
            .iter()
            .any(|p| p.contains("SETTINGS")));
        assert!(
            problems("SELECT a FROM source UNION ALL SELECT a FROM source")[0].contains("UNION")
        );
        assert!(
            problems("SELECT a FROM source WHERE a IN (SELECT a FROM secrets)")
                .iter()
                .any(|p| p.contains("subqueries"))
        );
        assert!(problems("SELECT a FROM source JOIN other ON 1")
            .iter()
            .any(|p| p.contains("JOIN")));
        assert!(problems("SELECT dictGet('d', 'x', a) AS x FROM source")[0].contains("dictGet"));
        assert!(problems("SELECT a + 1 FROM source")[0].contains("has no name"));
        assert!(problems("SELECT a FROM source LIMIT 10")[0].contains("LIMIT"));
        assert!(problems("SELECT a FROM source FORMAT JSON")
            .iter()
            .any(|p| p.contains("FORMAT")));
        assert!(problems("SELECT a FROM source INTO OUTFILE 'x'").len() == 1);
        let with = problems("WITH t AS (SELECT a FROM source) SELECT a FROM t");
        assert!(with.iter().any(|p| p.contains("WITH")), "{with:?}");
        assert!(problems("SELECT a, a FROM source")[0].contains("named twice"));
        assert!(problems("SELECT a FROM")[0].contains("does not parse"));
    }

    #[test]
    fn renders_what_it_accepted() {
        assert_eq!(
            render_key("( userId ,eventTime )").as_deref(),
            Some("(userId, eventTime)")
        );
        assert_eq!(render_key("a) ENGINE = Log; --"), None);
        let q = render_query(DESIGN_QUERY).unwrap();
        assert!(q.starts_with("SELECT userId, eventType, eventTime, properties, now() AS ingestedAt FROM source WHERE"), "{q}");
        let over = render_query_over("SELECT source.a AS a FROM source", "db", "probe").unwrap();
        assert_eq!(over, "SELECT source.a AS a FROM `db`.`probe` AS source");
    }

    #[test]
    fn keys_are_single_expressions() {
        let cols = analyze_key("toYYYYMM(eventTime)").unwrap();
        assert_eq!(cols[0].name, "eventTime");
        let cols = analyze_key("(userId, eventTime)").unwrap();
        assert_eq!(cols.len(), 2);
        assert!(analyze_key("userId) ENGINE = Log; DROP TABLE x; --").is_err());
        assert!(analyze_key("(SELECT 1)").is_err());
        assert!(analyze_key("a, b").is_err());
        let deep = "(".repeat(500) + "a" + &")".repeat(500);
        assert!(analyze_key(&deep).is_err());
    }
}
