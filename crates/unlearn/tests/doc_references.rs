//! Every reference to the project's documents points at something that exists: each
//! Markdown file of `docs/` named anywhere in the repository (code comments, README, BENCHMARKS.md,
//! configs, scripts, the documents themselves) is a file in `docs/`, and the section after it
//! (`§A1`, `§C1, §C2`, `P5b`, or a quoted heading such as `"Model store and deletion service"`)
//! is a heading of that file. The specification the project started from is not part of the
//! repository, so no file may cite it by its old names.

use std::path::{Path, PathBuf};

/// The repository's root (two levels above this crate).
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Directories that hold no sources: build outputs, vendored crates, results, git's own.
fn skipped_directory(name: &str) -> bool {
    matches!(
        name,
        "target" | "vendor" | "results" | "node_modules" | "__pycache__"
    ) || (name.starts_with('.') && name != ".ci")
}

/// Every text file under `dir` (files that are not UTF-8 are skipped).
fn text_files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !skipped_directory(&name) {
                text_files(&path, out);
            }
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
}

/// What follows a reference to a document.
#[derive(Debug, Clone, PartialEq)]
enum Section {
    /// `§A1`, `§F`, ...
    Algorithm(String),
    /// `P5b`, `P10`, ...
    Protocol(String),
    /// A heading quoted after the file name.
    Heading(String),
}

/// One reference found in a file.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    file: String,
    sections: Vec<Section>,
    line: usize,
}

/// A line without its indentation and the comment marker a wrapped comment continues with
/// (`//!`, `///`, `//`, `#`).
fn without_comment_marker(line: &str) -> &str {
    let line = line.trim_start_matches([' ', '\t']);
    line.strip_prefix("//!")
        .or_else(|| line.strip_prefix("///"))
        .or_else(|| line.strip_prefix("//"))
        .or_else(|| line.strip_prefix('#'))
        .unwrap_or(line)
}

/// Skips spaces, line breaks and comment markers, so that a section wrapped onto the next
/// line of a comment still counts.
fn skip_layout(text: &str) -> &str {
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        match trimmed.strip_prefix('\n') {
            Some(after) => rest = without_comment_marker(after),
            None => return trimmed,
        }
    }
}

/// `§X` or `PN` at the start of `text`, with the text after it.
fn section_at(text: &str) -> Option<(Section, &str)> {
    if let Some(rest) = text.strip_prefix('§') {
        let end = rest
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && c.is_ascii_uppercase())))
            .map_or(rest.len(), |(i, _)| i);
        if end == 0 {
            return None;
        }
        return Some((Section::Algorithm(rest[..end].to_string()), &rest[end..]));
    }
    if let Some(rest) = text.strip_prefix('P') {
        let digits = rest
            .char_indices()
            .find(|(_, c)| !c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        if digits == 0 {
            return None;
        }
        let end = if rest[digits..].starts_with('b') {
            digits + 1
        } else {
            digits
        };
        if rest[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric())
        {
            return None;
        }
        return Some((
            Section::Protocol(format!("P{}", &rest[..end])),
            &rest[end..],
        ));
    }
    None
}

/// Every reference to a Markdown file of `docs/` in `text`, with the sections that follow it.
fn references(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut search = 0;
    while let Some(offset) = text[search..].find("docs/") {
        let start = search + offset;
        search = start + "docs/".len();
        let name_end = text[search..]
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.'))
            .map_or(text.len(), |(i, _)| search + i);
        let name = text[search..name_end].trim_end_matches('.');
        let Some(stem) = name.strip_suffix(".md") else {
            continue;
        };
        if stem.is_empty() || stem.contains('.') {
            continue;
        }
        let line = text[..start].matches('\n').count() + 1;
        let mut sections = Vec::new();
        let after_name = &text[search + name.len()..];
        let rest = skip_layout(after_name);
        if let Some(quoted) = rest.strip_prefix('"') {
            if let Some(close) = quoted.find('"') {
                let heading: Vec<&str> = quoted[..close]
                    .lines()
                    .enumerate()
                    .map(|(i, line)| {
                        if i == 0 {
                            line
                        } else {
                            without_comment_marker(line)
                        }
                    })
                    .map(str::trim)
                    .collect();
                sections.push(Section::Heading(heading.join(" ")));
            }
        } else if let Some((section, mut rest)) = section_at(rest) {
            sections.push(section);
            // A list: `§C1, §C2` or `P8, P10`.
            while let Some(next) = rest
                .strip_prefix(", ")
                .or_else(|| rest.strip_prefix(" and "))
            {
                match section_at(next) {
                    Some((section, after)) => {
                        sections.push(section);
                        rest = after;
                    }
                    None => break,
                }
            }
        }
        found.push(Reference {
            file: name.to_string(),
            sections,
            line,
        });
    }
    found
}

/// Whether the Markdown `document` has a heading for `section`.
fn has_section(document: &str, section: &Section) -> bool {
    document
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| line.trim_start_matches('#').trim())
        .any(|heading| match section {
            Section::Algorithm(id) => {
                let label = format!("§{id}");
                heading
                    .strip_prefix(&label)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with(' '))
            }
            Section::Protocol(id) => heading
                .strip_prefix(id.as_str())
                .is_some_and(|rest| rest.starts_with(' ')),
            Section::Heading(text) => heading.starts_with(text.as_str()),
        })
}

#[test]
fn the_parser_reads_every_reference_style() {
    let text = "see docs/algorithms.md §C1, §C2 and (docs/experiments.md P5b; x)\n\
                //! verify (docs/algorithms.md\n//! §A5; more) docs/design.md \"Model store\n//! and x\" \
                docs/experiments.md's goal, docs/pytorch.md. docs/audit_slurm.sh";
    let found = references(text);
    let summary: Vec<(String, Vec<Section>)> = found
        .iter()
        .map(|r| (r.file.clone(), r.sections.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "algorithms.md".to_string(),
                vec![
                    Section::Algorithm("C1".into()),
                    Section::Algorithm("C2".into())
                ]
            ),
            (
                "experiments.md".to_string(),
                vec![Section::Protocol("P5b".into())]
            ),
            (
                "algorithms.md".to_string(),
                vec![Section::Algorithm("A5".into())]
            ),
            (
                "design.md".to_string(),
                vec![Section::Heading("Model store and x".into())]
            ),
            ("experiments.md".to_string(), vec![]),
            ("pytorch.md".to_string(), vec![]),
        ]
    );
    let document = "# T\n## §A. Convex\n### §A1. Newton\n## P5b — amnesiac\n## P10 — nets\n";
    assert!(has_section(document, &Section::Algorithm("A1".into())));
    assert!(has_section(document, &Section::Algorithm("A".into())));
    assert!(!has_section(document, &Section::Algorithm("A2".into())));
    assert!(has_section(document, &Section::Protocol("P5b".into())));
    assert!(!has_section(document, &Section::Protocol("P1".into())));
    assert!(has_section(document, &Section::Protocol("P10".into())));
}

#[test]
fn every_reference_names_an_existing_document_and_section() {
    let root = repository_root();
    let mut files = Vec::new();
    text_files(&root, &mut files);
    let mut checked = 0;
    let mut broken = Vec::new();
    for (path, text) in &files {
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        for reference in references(text) {
            let target = root.join("docs").join(&reference.file);
            let Ok(document) = std::fs::read_to_string(&target) else {
                broken.push(format!(
                    "{shown}:{}: docs/{} does not exist",
                    reference.line, reference.file
                ));
                continue;
            };
            for section in &reference.sections {
                checked += 1;
                if !has_section(&document, section) {
                    broken.push(format!(
                        "{shown}:{}: docs/{} has no section {section:?}",
                        reference.line, reference.file
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken references:\n{}",
        broken.join("\n")
    );
    // The tree cites the documents' sections about 120 times; a parser that found none would
    // pass vacuously.
    assert!(checked >= 100, "only {checked} section references found");
}

#[test]
fn nothing_cites_the_specification_outside_the_repository() {
    let root = repository_root();
    let mut files = Vec::new();
    text_files(&root, &mut files);
    // The old names, spelt so that this file does not contain them.
    let old_names = [
        ["ALGO", "RITHMS.md"].concat(),
        ["EXPERI", "MENTS.md"].concat(),
        ["DES", "IGN.md"].concat(),
    ];
    let mut citing = Vec::new();
    for (path, text) in &files {
        for name in &old_names {
            if text.contains(name.as_str()) {
                citing.push(format!("{} cites {name}", path.display()));
            }
        }
    }
    assert!(citing.is_empty(), "{}", citing.join("\n"));
}
