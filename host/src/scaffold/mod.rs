//! `weir plugin new|build|test`: the first minute of a plugin author. `new` writes a Rust
//! filter crate that builds, tests and loads as it is; `build` makes its component
//! (`<name>.wasm`, named as the config will name it); `test` runs its unit tests natively.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str =
    "usage: weir plugin new NAME [--dir DIR] [--sdk PATH]   write a Rust filter crate in DIR/NAME
       weir plugin build [DIR]                         build DIR's component as DIR/NAME.wasm
       weir plugin test [DIR]                          run DIR's unit tests (natively)";

/// The templates of a Rust filter crate: (path in the crate, text).
const RUST: [(&str, &str); 4] = [
    ("Cargo.toml", include_str!("rust/Cargo.toml.in")),
    ("src/lib.rs", include_str!("rust/lib.rs.in")),
    ("README.md", include_str!("rust/README.md.in")),
    (".gitignore", include_str!("rust/gitignore.in")),
];

/// Runs `weir plugin ARGS`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args {
        [cmd, name, rest @ ..] if cmd == "new" => {
            let (mut dir, mut sdk) = (PathBuf::from("."), None);
            let mut options = rest.iter();
            while let Some(option) = options.next() {
                let value = options
                    .next()
                    .with_context(|| format!("{option} needs a value\n{USAGE}"));
                match option.as_str() {
                    "--dir" => dir = PathBuf::from(value?),
                    "--sdk" => sdk = Some(PathBuf::from(value?)),
                    "--lang" if value.as_ref().is_ok_and(|v| *v == "rust") => {}
                    "--lang" => bail!(
                        "only --lang rust is scaffolded so far (a Python filter: see tests/python-plugin)"
                    ),
                    _ => bail!("unknown option {option}\n{USAGE}"),
                }
            }
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => find_sdk()
                    .context("cannot find the plugin SDK: pass --sdk /path/to/weir/plugin-sdk")?,
            };
            let made = new(name, &dir, &sdk)?;
            println!(
                "{}: a filter crate; next: cd {} && weir plugin test && weir plugin build",
                made.display(),
                made.display()
            );
            Ok(())
        }
        [cmd, rest @ ..] if cmd == "build" || cmd == "test" => {
            let dir = PathBuf::from(rest.first().map_or(".", String::as_str));
            match cmd.as_str() {
                "build" => build(&dir).map(|wasm| println!("{}", wasm.display())),
                _ => cargo(&dir, &["test"]),
            }
        }
        _ => bail!("{USAGE}"),
    }
}

/// Writes the crate `name` in `dir/name`, depending on the SDK at `sdk`; returns its path.
pub fn new(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<PathBuf> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("plugin name {name:?}: lower-case letters, digits and '-', starting with a letter");
    }
    let sdk =
        std::fs::canonicalize(sdk).with_context(|| format!("the SDK at {}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() || !sdk.join("../wit").is_dir() {
        bail!(
            "{} is not the plugin SDK of a Weir checkout (it needs ../wit beside it)",
            sdk.display()
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    for (path, template) in RUST {
        let text = template
            .replace("{{name}}", name)
            .replace("{{sdk}}", &sdk.display().to_string());
        let file = root.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("{}", file.display()))?;
    }
    Ok(root)
}

/// Builds the crate in `dir` for `wasm32-wasip2` and copies its component to
/// `dir/<package name>.wasm` (Cargo writes `-` as `_`); returns that path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).with_context(|| {
        format!(
            "{}: no Cargo.toml (run weir plugin build in the crate)",
            dir.display()
        )
    })?;
    let name = package_name(&manifest).context("Cargo.toml has no [package] name")?;
    cargo(dir, &["build", "--release", "--target", "wasm32-wasip2"])?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::copy(&built, &wasm)
        .with_context(|| format!("copy {} to {}", built.display(), wasm.display()))?;
    Ok(wasm)
}

/// Runs `cargo ARGS` in `dir`; a missing Wasm target is named with its fix.
fn cargo(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("cargo").args(args).current_dir(dir).status();
    let status = output.context("cannot run cargo")?;
    if status.success() {
        return Ok(());
    }
    if args.contains(&"wasm32-wasip2") && !wasm_target_installed() {
        bail!("the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2");
    }
    bail!("cargo {} failed ({status})", args.join(" "))
}

fn wasm_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip2")
        })
}

/// `name = "…"` of the manifest's `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let value: toml::Value = toml::from_str(manifest).ok()?;
    Some(value.get("package")?.get("name")?.as_str()?.to_string())
}

/// The SDK of the Weir checkout this program or the current directory is in: the first
/// `plugin-sdk` found walking up from either.
fn find_sdk() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok();
    let starts = [
        std::env::current_dir().ok(),
        exe.and_then(|e| e.parent().map(Path::to_path_buf)),
    ];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .map(|d| d.join("plugin-sdk"))
            .find(|sdk| sdk.join("Cargo.toml").is_file() && sdk.join("../wit").is_dir())
    })
}
