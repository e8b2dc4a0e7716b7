//! The library's modules form layers, and code only reaches down: a module may use a module of
//! a lower layer, never one of its own layer or above (so there is no import circle either).
//! docs/design.md "Layers" draws the same table; this test keeps the two true.
//!
//! An arrow is a `crate::MODULE` path in the code of a top-level module's files (comments and
//! doc comments are not code and are skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. Each line: the modules of one layer.
const LAYERS: &[&[&str]] = &[
    // The error type, and what reads nothing of the library: the machine, progress bars.
    &["error", "machine", "progress"],
    // Foundations: files, threads, devices, and the two plain settings types (a training
    // recipe, a method's parameters) that models, trainers and configs all read.
    &["io", "parallel", "device", "params", "recipe"],
    // Data and the privacy accounting (formulas over numbers; the (ε, δ) certificate).
    &["data", "privacy"],
    // Networks, their files and PyTorch interop.
    &["model"],
    // The trainer, and an experiment's fixed inputs (data, split, model, recipe, seed).
    &["train", "experiment"],
    // Evaluation; the certified convex models; k-means.
    &["eval", "convex", "kmeans"],
    // Unlearning methods of one network; SISA ensembles.
    &["methods", "sisa"],
    // The runner: train the original, run a candidate (method or scheme), evaluate.
    &["pipeline"],
    // Harnesses over the runner: the model store, bench grids.
    &["store", "bench"],
    // The audit (reads bench's config types).
    &["audit"],
    // The front end's steps (open any model file, train / forget / evaluate and save, the
    // text the CLI prints), shared by the CLI and the Python package.
    &["workflow"],
    // The names most programs need, re-exported from everywhere.
    &["prelude"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

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

/// Every `crate::NAME` in the code (not comments) of `text`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// The arrows module → modules it uses, from the library's sources.
fn arrows() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for name in crate_paths(&text) {
            if name != module && name != "Error" && name != "Result" {
                uses.insert(name);
            }
        }
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let missing: Vec<String> = arrows()
        .keys()
        .filter(|module| layer_of(module).is_none())
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/layers.rs and docs/design.md: {missing:?}"
    );
}

#[test]
fn code_only_reaches_down() {
    let mut wrong = Vec::new();
    for (module, uses) in arrows() {
        let Some(from) = layer_of(&module) else {
            continue;
        };
        for used in uses {
            match layer_of(&used) {
                Some(to) if to < from => {}
                Some(to) => wrong.push(format!("{module} (layer {from}) → {used} (layer {to})")),
                None => wrong.push(format!("{module} → {used} (no layer)")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that do not run down:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_code_and_skips_comments() {
    let text = "use crate::data::Split;\n/// see [`crate::pipeline`]\nlet x = crate::eval::f(); // crate::audit\n";
    let found = crate_paths(text);
    assert_eq!(
        found,
        ["data", "eval"].iter().map(|s| s.to_string()).collect()
    );
}
