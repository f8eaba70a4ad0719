//! Python and JavaScript filters: a source file, the WIT contract copied beside it (so the
//! directory builds anywhere), and `plugin-test.toml`; built by componentize-py or
//! componentize-js, found as a plugin author installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The componentize-py the scaffold pins (in `pyproject.toml` and its README).
const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js the scaffold pins (in `package.json`).
pub(super) const COMPONENTIZE_JS: &str = "0.23.0";

/// The world a filter implements.
const WORLD: &str = "filter-plugin";

/// The plugin contract, written into every Python and JavaScript filter's `wit/`.
const WIT: [(&str, &str); 3] = [
    ("wit/world.wit", include_str!("../../../wit/world.wit")),
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    ("wit/push.wit", include_str!("../../../wit/push.wit")),
];

/// The templates of a Python filter: (path in its directory, text).
const PYTHON: [(&str, &str); 5] = [
    ("app.py", include_str!("python/app.py.in")),
    ("pyproject.toml", include_str!("python/pyproject.toml.in")),
    (
        "plugin-test.toml",
        include_str!("python/plugin-test.toml.in"),
    ),
    ("README.md", include_str!("python/README.md.in")),
    (".gitignore", include_str!("python/gitignore.in")),
];

/// The templates of a JavaScript filter.
const JS: [(&str, &str); 5] = [
    ("app.js", include_str!("js/app.js.in")),
    ("package.json", include_str!("js/package.json.in")),
    ("plugin-test.toml", include_str!("js/plugin-test.toml.in")),
    ("README.md", include_str!("js/README.md.in")),
    (".gitignore", include_str!("js/gitignore.in")),
];

/// A language that componentize builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lang {
    /// componentize-py; the project file is `pyproject.toml`.
    Python,
    /// componentize-js; the project file is `package.json`.
    Js,
}

impl Lang {
    /// The files of a new filter in this language, the contract included.
    pub(super) fn files(self) -> impl Iterator<Item = (&'static str, &'static str)> {
        let own: &[(&str, &str)] = match self {
            Lang::Python => &PYTHON,
            Lang::Js => &JS,
        };
        own.iter().chain(WIT.iter()).copied()
    }

    /// The file that names the project.
    pub(super) fn project_file(self) -> &'static str {
        match self {
            Lang::Python => "pyproject.toml",
            Lang::Js => "package.json",
        }
    }
}

/// Builds the filter in `dir` into `dir/<name>.wasm`; returns that path.
pub(super) fn build(lang: Lang, dir: &Path) -> anyhow::Result<PathBuf> {
    let name = project_name(lang, dir)?;
    let wasm = dir.join(format!("{name}.wasm"));
    let mut cmd = tool(lang, dir)?;
    match lang {
        Lang::Python => cmd
            .args(["-d", "wit", "-w", WORLD, "componentize", "app", "-o"])
            .arg(&wasm)
            // Bytecode caches are no part of the source.
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        // No HTTP client or fetch-event handler: the gateway gives a filter no sockets
        // (outbound calls go through the granted `http` interface), and without them the
        // build needs no network.
        Lang::Js => cmd
            .args([
                "app.js",
                "-w",
                "wit",
                "-n",
                WORLD,
                "-d",
                "http",
                "fetch-event",
                "-o",
            ])
            .arg(&wasm),
    };
    let status = cmd
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{} failed ({status})", tool_name(lang));
    }
    Ok(wasm)
}

/// The project's name: `[project] name` of `pyproject.toml`, `name` of `package.json`.
pub(super) fn project_name(lang: Lang, dir: &Path) -> anyhow::Result<String> {
    let file = dir.join(lang.project_file());
    let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    let name = match lang {
        Lang::Python => toml::from_str::<toml::Table>(&text)
            .with_context(|| format!("{}", file.display()))?
            .get("project")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str().map(str::to_string)),
        Lang::Js => serde_json::from_str::<serde_json::Value>(&text)
            .with_context(|| format!("{}", file.display()))?
            .get("name")
            .and_then(|n| n.as_str().map(str::to_string)),
    };
    name.with_context(|| format!("{} names no project", file.display()))
}

fn tool_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "componentize-py",
        Lang::Js => "componentize-js",
    }
}

/// The command that runs the language's componentize tool, or what to install.
/// componentize-py: on `PATH`, else the module under `python3` (a `pip install --target`
/// named in `PYTHONPATH`). componentize-js: the project's `node_modules` (`npm install`),
/// else on `PATH`. Neither is ever downloaded here (no `npx` fetch): a build runs offline.
fn tool(lang: Lang, dir: &Path) -> anyhow::Result<Command> {
    let runs = |cmd: &mut Command| {
        cmd.arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    match lang {
        Lang::Python => {
            if runs(&mut Command::new("componentize-py")) {
                return Ok(Command::new("componentize-py"));
            }
            // The package has no `__main__`: `python3 -m componentize_py` does not run.
            let module = || {
                let mut python = Command::new("python3");
                python.args([
                    "-c",
                    "import sys; from componentize_py import script; \
                     sys.argv[0] = 'componentize-py'; sys.exit(script())",
                ]);
                python
            };
            if runs(&mut module()) {
                return Ok(module());
            }
            bail!(
                "componentize-py is not installed: pip install componentize-py=={COMPONENTIZE_PY}"
            )
        }
        Lang::Js => {
            let local = dir.join("node_modules/.bin/componentize-js");
            if local.is_file() {
                return Ok(Command::new(local));
            }
            if runs(&mut Command::new("componentize-js")) {
                return Ok(Command::new("componentize-js"));
            }
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            bail!(
                "componentize-js is not installed: run npm install in {} (package.json pins @bytecodealliance/componentize-js)",
                dir.display()
            )
        }
    }
}
