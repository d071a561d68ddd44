//! PV205 unknown-receiver: an alert receiver that paver cannot send to: an unknown scheme,
//! or a Slack channel that paver.yaml does not define.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Node;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a pipeline's `alerting.onFailure` (or a `notifications.routes` entry or
    /// `notifications.defaultRoute` of paver.yaml) that is neither `slack://#<channel>`
    /// nor an `http://` or `https://` URL, and a `slack://#<channel>` whose channel has no
    /// entry under `notifications.slack` in paver.yaml.
    ///
    /// ## Why is this bad?
    /// paver sends alerts only to Slack incoming webhooks and to HTTP(S) receivers, and a
    /// Slack channel's webhook URL comes from `notifications.slack.<channel>.webhookUrlEnv`.
    /// A receiver it cannot resolve means that the pipeline's alerts go nowhere: the
    /// pipeline is silently unwatched.
    ///
    /// ## Example
    /// ```yaml
    /// alerting:
    ///   onFailure: "slack://#data-alert"     # paver.yaml defines #data-alerts
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// alerting:
    ///   onFailure: "slack://#data-alerts"
    /// # paver.yaml
    /// notifications:
    ///   slack:
    ///     data-alerts: { webhookUrlEnv: SLACK_DATA_ALERTS_URL }
    /// ```
    ///
    /// ## References
    /// README, "Alerts and notifications".
    pub struct UnknownReceiver {
        code: "PV205",
        name: "unknown-receiver",
        severity: Error,
        summary: "an alert receiver has an unknown scheme or names a Slack channel that paver.yaml does not define",
    }
}

impl Rule for UnknownReceiver {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let settings = ws.files.iter().find(|f| f.path == "paver.yaml");
        let channels: Vec<String> = settings
            .and_then(|f| f.at(&["notifications", "slack"]))
            .map(Node::as_map)
            .unwrap_or_default()
            .iter()
            .map(|e| e.key.clone())
            .collect();
        let mut receivers: Vec<(&str, &Node)> = ws
            .specs(Kind::DataPipeline)
            .filter_map(|(file, root)| {
                Some((
                    file.path.as_str(),
                    root.path(&["spec", "alerting", "onFailure"])?,
                ))
            })
            .collect();
        if let Some(file) = settings {
            for entry in file
                .at(&["notifications", "routes"])
                .map(Node::as_map)
                .unwrap_or_default()
            {
                receivers.push((file.path.as_str(), &entry.value));
            }
            if let Some(node) = file.at(&["notifications", "defaultRoute"]) {
                receivers.push((file.path.as_str(), node));
            }
        }
        for (path, node) in receivers {
            let Some(text) = node.as_str() else {
                continue;
            };
            if let Some(channel) = text.strip_prefix("slack://#") {
                if channel.is_empty() || channels.iter().any(|c| c == channel) {
                    continue;
                }
                let d = self
                    .diagnostic(
                        path,
                        node.span,
                        format!(
                            "no Slack channel `{channel}` under notifications.slack in paver.yaml"
                        ),
                    )
                    .label("unknown channel");
                out.push(match did_you_mean(channel, channels.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `slack://#{s}`?")),
                    None => d.help(format!(
                        "add `notifications: {{slack: {{{channel}: {{webhookUrlEnv: <VAR>}}}}}}` to paver.yaml"
                    )),
                });
            } else if !(text.starts_with("http://") || text.starts_with("https://")) {
                let scheme = text.split("://").next().unwrap_or(text);
                out.push(
                    self.diagnostic(
                        path,
                        node.span,
                        format!("paver cannot send alerts to `{scheme}://`"),
                    )
                    .label("unknown scheme")
                    .help("use `slack://#<channel>` or an `http://` / `https://` URL"),
                );
            }
        }
    }
}
