//! `lattice new`: scaffold a standalone actor project.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use super::{Lang, embedded};

/// Create an actor project (Rust or Python) in a new directory.
///
/// The project is a key-value counter that replies (and publishes when linked), the WIT packages it targets in
/// wit/, a README with the build and run steps, and a .gitignore.
///
/// Then: cd <name> && lattice build
///
/// Example: lattice new hello --lang python
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project's name: also its directory and the actor's name (lowercase letters, digits and `-`,
    /// starting with a letter)
    name: String,
    /// The language of the actor
    #[arg(long, value_enum, default_value_t)]
    lang: Lang,
    /// Where to create the project directory [the current directory]
    #[arg(long, value_name = "DIR", default_value = ".")]
    path: PathBuf,
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = if args.path == Path::new(".") { PathBuf::from(&args.name) } else { args.path.join(&args.name) };
    create(&dir, &args.name, args.lang)?;
    eprintln!("created {} actor `{}`; next: cd {} && lattice build", args.lang.as_str(), args.name, dir.display());
    println!("{}", super::absolute(&dir)?.display());
    Ok(())
}

/// Creates the project `name` in `dir`, which must not exist.
pub fn create(dir: &Path, name: &str, lang: Lang) -> anyhow::Result<()> {
    if dir.exists() {
        bail!("{} already exists: choose another name or remove it", dir.display());
    }
    let prefix = format!("{}/", lang.as_str());
    let templates = embedded::TEMPLATE_FILES.iter().filter_map(|(path, text)| {
        let relative = path.strip_prefix(&prefix)?;
        Some((output_path(relative), substitute(text, name)))
    });
    let wit = super::wit_files().map(|(path, text)| (format!("wit/{path}"), text));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    super::write_files(dir, templates.chain(wit))
}

/// A template's path in the project: `gitignore` becomes `.gitignore` (a dotfile would act on this repository)
/// and the `.tmpl` suffix (kept off files cargo or Python tools would pick up in the repository) goes.
fn output_path(template: &str) -> String {
    let path = template.strip_suffix(".tmpl").unwrap_or(template);
    if path == "gitignore" { ".gitignore".to_owned() } else { path.to_owned() }
}

fn substitute(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{crate_name}}", &name.replace('-', "_"))
        .replace("{{wit_bindgen_version}}", embedded::WIT_BINDGEN_VERSION)
}

/// A name that is a directory, a Cargo package, a Python project and a lattice actor name alike.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "`{name}` is not a valid actor name: use lowercase letters, digits and `-`, starting with a letter \
             (at most 64)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["hello", "kv-counter2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Hello", "1abc", "a_b", "a-", "../x", "a b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn projects_have_wit_sources_readme_and_gitignore() {
        let tmp = tempfile::tempdir().unwrap();
        for (lang, source, manifest) in
            [(Lang::Rust, "src/lib.rs", "Cargo.toml"), (Lang::Python, "app.py", "pyproject.toml")]
        {
            let dir = tmp.path().join(lang.as_str());
            create(&dir, "my-actor", lang).unwrap();
            for file in [source, manifest, "README.md", ".gitignore", "wit/lattice.wit", "wit/deps/keyvalue/store.wit"]
            {
                assert!(dir.join(file).is_file(), "{lang:?}: {file}");
            }
            let manifest = std::fs::read_to_string(dir.join(manifest)).unwrap();
            assert!(manifest.contains("name = \"my-actor\""), "{manifest}");
            assert!(!std::fs::read_to_string(dir.join(source)).unwrap().contains("{{"));
            assert_eq!(Lang::detect(&dir).unwrap(), lang);
            let error = create(&dir, "my-actor", lang).unwrap_err().to_string();
            assert!(error.contains("already exists"), "{error}");
        }
        let cargo = std::fs::read_to_string(tmp.path().join("rust/Cargo.toml")).unwrap();
        assert!(cargo.contains(&format!("version = \"{}\"", embedded::WIT_BINDGEN_VERSION)), "{cargo}");
        assert!(cargo.contains("[workspace]"), "{cargo}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("rust/wit/lattice.wit")).unwrap(),
            include_str!("../../../wit/lattice.wit")
        );
    }
}
