//! The runtime's folders are layers: a module imports only the ones below it, so there is
//! no import circle and nothing low depends on something high. Read from the sources.

use std::path::{Path, PathBuf};

/// Lowest first; the order ARCHITECTURE.md describes.
const LAYERS: &[&str] = &[
    "metrics",
    "registry",
    "exposition",
    "health",
    "slo",
    "propagation",
    "http",
    "pprof",
    "admin",
    "telemetry",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(layer, line)` for every `crate::layer` named on a non-comment line.
fn references(text: &str) -> Vec<(&str, usize)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let name: &str = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            if let Some(layer) = LAYERS.iter().find(|l| **l == name) {
                found.push((*layer, n + 1));
            }
        }
    }
    found
}

#[test]
fn no_layer_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("observe-runtime/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs");
        let Some(rank) = LAYERS.iter().position(|l| *l == top) else {
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for (layer, line) in references(&text) {
            let target = LAYERS.iter().position(|l| *l == layer).unwrap();
            if target > rank {
                wrong.push(format!("{}:{line} ({top} → {layer})", rel.display()));
            }
        }
    }
    assert!(checked > 30, "the runtime's files were found ({checked})");
    assert!(
        wrong.is_empty(),
        "imports that point up a layer: {wrong:#?}"
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        references("use crate::admin::AccessPolicy;\n// crate::telemetry\nx(crate::http::y)"),
        [("admin", 1), ("http", 3)]
    );
}
