//! The last generations the gateway served: for each, what it was built from (the config
//! and the plugins, compiled), when, from where, and what changed from the one before. A
//! rollback builds a snapshot from one of them again; `GET /generations` lists them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::status::PluginFiles;
use crate::config::Config;

/// Where a generation's inputs came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The config file and the plugins directory (a watched change, `POST /reload`, start).
    Files,
    /// A rollback to the generation of this number.
    Rollback(u64),
    /// A config published with `POST /config` (with the plugins directory).
    Published,
}

impl Source {
    fn describe(&self, config_path: &str) -> String {
        match self {
            Self::Files => format!("files ({config_path} and the plugins directory)"),
            Self::Rollback(n) => format!("rollback to generation {n}"),
            Self::Published => "POST /config".to_string(),
        }
    }
}

/// One generation, kept.
pub(crate) struct Generation {
    pub(crate) number: u64,
    at_ms: u64,
    source: String,
    changes: Vec<String>,
    /// What it was built from.
    pub(crate) config: Config,
    pub(crate) plugins: PluginFiles,
}

/// What `GET /generations` shows of one.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationSummary {
    /// Its number.
    pub generation: u64,
    /// When it was swapped in (ms since the Unix epoch).
    pub at_ms: u64,
    /// Where its inputs came from.
    pub source: String,
    /// What changed from the generation before it, by section and file.
    pub changes: Vec<String>,
    /// Whether it is serving now.
    pub live: bool,
}

/// The generations kept, oldest first.
#[derive(Default)]
pub(crate) struct Generations(Mutex<VecDeque<Arc<Generation>>>);

impl Generations {
    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Generation>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a generation swapped in, keeping at most `keep`.
    pub(crate) fn record(
        &self,
        (number, source, config_path): (u64, &Source, &str),
        config: Config,
        plugins: PluginFiles,
        keep: usize,
    ) {
        let mut kept = self.kept();
        let changes = match kept.back() {
            Some(before) => changes(&before.config, &before.plugins, &config, &plugins),
            None => vec!["first generation".to_string()],
        };
        kept.push_back(Arc::new(Generation {
            number,
            at_ms: crate::time::now_ms(),
            source: source.describe(config_path),
            changes,
            config,
            plugins,
        }));
        while kept.len() > keep.max(1) {
            kept.pop_front();
        }
    }

    /// The generation `number`, if it is kept.
    pub(crate) fn get(&self, number: u64) -> Option<Arc<Generation>> {
        self.kept().iter().find(|g| g.number == number).cloned()
    }

    /// The summaries, newest first; `live` marks the serving one.
    pub(crate) fn list(&self, live: u64) -> Vec<GenerationSummary> {
        (self.kept().iter().rev())
            .map(|g| GenerationSummary {
                generation: g.number,
                at_ms: g.at_ms,
                source: g.source.clone(),
                changes: g.changes.clone(),
                live: g.number == live,
            })
            .collect()
    }
}

/// A section of the config, as text to compare.
type Section = fn(&Config) -> String;

/// Names added, removed and changed between two maps, as `what name: added` lines.
fn diff<T: Debug>(
    what: &str,
    before: &BTreeMap<String, T>,
    after: &BTreeMap<String, T>,
) -> Vec<String> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let verb = match (before.get(name), after.get(name)) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(b), Some(a)) if format!("{b:?}") != format!("{a:?}") => "changed",
                _ => return None,
            };
            Some(format!("{what} {name:?}: {verb}"))
        })
        .collect()
}

/// What changed between two generations' inputs: routes, upstreams, plugin files (by
/// content hash) and the other sections of the config (by name only: values may be
/// secrets).
fn changes(
    config_before: &Config,
    plugins_before: &PluginFiles,
    config: &Config,
    plugins: &PluginFiles,
) -> Vec<String> {
    let routes = |c: &Config| -> BTreeMap<String, String> {
        (c.routes.iter())
            .map(|r| (r.name.clone(), format!("{r:?}")))
            .collect()
    };
    let hashes = |p: &PluginFiles| -> BTreeMap<String, String> {
        (p.iter())
            .map(|(file, r)| {
                (
                    file.clone(),
                    r.as_ref().map_or_else(|e| e.clone(), |p| p.hash.clone()),
                )
            })
            .collect()
    };
    let mut out = diff("route", &routes(config_before), &routes(config));
    out.extend(diff(
        "upstream",
        &config_before.upstreams,
        &config.upstreams,
    ));
    out.extend(diff("plugin", &hashes(plugins_before), &hashes(plugins)));
    // Compared by their text, never shown: values may be secrets.
    let sections: [(&str, Section); 8] = [
        ("server", |c| format!("{:?}", c.server)),
        ("runtime", |c| format!("{:?}", c.runtime)),
        ("secrets", |c| format!("{:?}", c.secrets)),
        ("state", |c| format!("{:?}", c.state)),
        ("push", |c| format!("{:?}", c.push)),
        ("bulkheads", |c| format!("{:?}", c.bulkheads)),
        ("cache", |c| format!("{:?}", c.cache)),
        ("route order", |c| {
            format!("{:?}", c.routes.iter().map(|r| &r.name).collect::<Vec<_>>())
        }),
    ];
    for (name, text) in sections {
        if text(config_before) != text(config) {
            out.push(format!("[{name}] changed"));
        }
    }
    if out.is_empty() {
        out.push("nothing".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(
            &format!("[server]\nlisten = [\"127.0.0.1:0\"]\nplugins_dir = \"p\"\n{text}"),
            ".".into(),
        )
        .expect("config")
    }

    #[test]
    fn changes_name_what_was_added_removed_and_changed_and_the_list_is_bounded() {
        let up = "[upstreams.a]\ntargets = [\"127.0.0.1:1\"]\n";
        let one = config(&format!("{up}[[routes]]\nname = \"r\"\nupstream = \"a\"\n"));
        let two = config(&format!(
            "{up}[[routes]]\nname = \"r\"\nupstream = \"a\"\ntimeout_ms = 5\n\
             [[routes]]\nname = \"s\"\nupstream = \"a\"\n[cache]\nmemory_bytes = 67108864\nmax_ttl_ms = 1000\n"
        ));
        let kept = Generations::default();
        kept.record((1, &Source::Files, "weir.toml"), one, PluginFiles::new(), 2);
        kept.record(
            (2, &Source::Published, "weir.toml"),
            two.clone(),
            PluginFiles::new(),
            2,
        );
        let list = kept.list(2);
        assert_eq!(list[0].generation, 2);
        assert!(list[0].live && !list[1].live);
        assert_eq!(list[0].source, "POST /config");
        assert_eq!(
            list[0].changes,
            [
                "route \"r\": changed",
                "route \"s\": added",
                "[cache] changed",
                "[route order] changed"
            ]
        );
        kept.record(
            (3, &Source::Rollback(1), "weir.toml"),
            two,
            PluginFiles::new(),
            2,
        );
        let list = kept.list(3);
        assert_eq!(list.len(), 2, "bounded");
        assert_eq!(list[0].changes, ["nothing"]);
        assert_eq!(list[0].source, "rollback to generation 1");
        assert!(kept.get(1).is_none() && kept.get(2).is_some());
    }
}
