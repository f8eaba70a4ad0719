//! `weir plugin new|build|test`: the first minute of a plugin author. `new` writes a filter
//! in Rust, Python or JavaScript that builds, tests and loads as it is; `build` makes its
//! component (`<name>.wasm`, named as the config will name it); `test` runs its tests: a
//! Rust crate's unit tests natively, a Python or JavaScript filter's `plugin-test.toml`
//! in a gateway (`harness`).

mod componentize;
mod harness;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use componentize::Lang as Componentized;

const USAGE: &str = "usage: weir plugin new NAME [--lang rust|python|js] [--dir DIR] [--sdk PATH]
                                         write a filter in DIR/NAME (default: Rust in .;
                                         --sdk: the plugin SDK, for Rust)
       weir plugin build [DIR]           build DIR's component as DIR/NAME.wasm
       weir plugin test [DIR]            test DIR's filter: Rust natively (cargo test),
                                         Python and JS in a gateway (plugin-test.toml)";

/// The languages a filter is scaffolded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Rust,
    Componentized(Componentized),
}

impl Lang {
    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "rust" => Lang::Rust,
            "python" | "py" => Lang::Componentized(Componentized::Python),
            "js" | "javascript" => Lang::Componentized(Componentized::Js),
            _ => bail!("--lang {name}: rust, python or js"),
        })
    }

    /// The language of the filter in `dir`, by its project file.
    fn of(dir: &Path) -> anyhow::Result<Self> {
        if dir.join("Cargo.toml").is_file() {
            return Ok(Lang::Rust);
        }
        for lang in [Componentized::Python, Componentized::Js] {
            if dir.join(lang.project_file()).is_file() {
                return Ok(Lang::Componentized(lang));
            }
        }
        bail!(
            "{}: no Cargo.toml, pyproject.toml or package.json (run weir plugin in a filter's directory)",
            dir.display()
        )
    }
}

/// Runs `weir plugin ARGS`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args {
        [cmd, name, rest @ ..] if cmd == "new" => {
            let (mut dir, mut sdk, mut lang) = (PathBuf::from("."), None, Lang::Rust);
            let mut options = rest.iter();
            while let Some(option) = options.next() {
                let value = options
                    .next()
                    .with_context(|| format!("{option} needs a value\n{USAGE}"));
                match option.as_str() {
                    "--dir" => dir = PathBuf::from(value?),
                    "--sdk" => sdk = Some(PathBuf::from(value?)),
                    "--lang" => lang = Lang::parse(value?)?,
                    _ => bail!("unknown option {option}\n{USAGE}"),
                }
            }
            if sdk.is_some() && lang != Lang::Rust {
                bail!("--sdk is the Rust SDK: a Python or JavaScript filter needs none");
            }
            let made = new(name, lang, &dir, sdk)?;
            // componentize-js comes into the project's node_modules.
            let install = match lang {
                Lang::Componentized(Componentized::Js) => "npm install && ",
                _ => "",
            };
            println!(
                "{}: a filter; next: cd {} && {install}weir plugin test && weir plugin build",
                made.display(),
                made.display()
            );
            Ok(())
        }
        [cmd, rest @ ..] if cmd == "build" || cmd == "test" => {
            let dir = PathBuf::from(rest.first().map_or(".", String::as_str));
            match (cmd.as_str(), Lang::of(&dir)?) {
                ("build", lang) => build(lang, &dir).map(|wasm| println!("{}", wasm.display())),
                (_, Lang::Rust) => rust::test(&dir),
                (_, Lang::Componentized(lang)) => {
                    let wasm = componentize::build(lang, &dir)?;
                    let name = componentize::project_name(lang, &dir)?;
                    harness::run(&dir, &name, &wasm)
                }
            }
        }
        _ => bail!("{USAGE}"),
    }
}

/// Writes the filter `name` in `lang` in `dir/name` (a Rust crate depends on the SDK at
/// `sdk`, or the one found from here); returns its path.
fn new(name: &str, lang: Lang, dir: &Path, sdk: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("plugin name {name:?}: lower-case letters, digits and '-', starting with a letter");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    let (files, sdk): (Vec<_>, _) = match lang {
        Lang::Rust => (rust::FILES.to_vec(), Some(rust::sdk_path(sdk)?)),
        Lang::Componentized(lang) => (lang.files().collect(), None),
    };
    let sdk = sdk.map(|s| s.display().to_string()).unwrap_or_default();
    for (path, template) in files {
        let text = template
            .replace("{{name}}", name)
            .replace("{{sdk}}", &sdk)
            .replace("{{componentize_js}}", componentize::COMPONENTIZE_JS);
        let file = root.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("{}", file.display()))?;
    }
    Ok(root)
}

/// Builds the filter in `dir`; returns its component's path.
fn build(lang: Lang, dir: &Path) -> anyhow::Result<PathBuf> {
    match lang {
        Lang::Rust => rust::build(dir),
        Lang::Componentized(lang) => componentize::build(lang, dir),
    }
}
