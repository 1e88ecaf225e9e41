//! Every relative link in the Markdown files a reader opens on GitHub
//! (README.md, docs/*.md) points at a file that exists, and every anchor
//! (`file.md#heading`) at a heading of that file.
//!
//! Links that only rustdoc resolves (`crate::net::StreamReader`, ``[`Task`]``)
//! are checked by `RUSTDOCFLAGS="-D warnings" cargo doc --no-deps` instead
//! (see `.ci/run`); on GitHub they show as text, so the chapters give the
//! plain path (`docs/04-timers.md`) next to each link to another chapter.

use std::fs;
use std::path::{Path, PathBuf};

/// The Markdown files checked: README.md and docs/*.md.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The targets of inline links `[text](target)` outside code, with their
/// line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code spans cannot hold links.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lowercase, spaces to dashes, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Whether a link target is one rustdoc resolves (an intra-doc path) or an
/// external address: not a file to check here.
fn not_a_file(target: &str) -> bool {
    target.contains("://")
        || target.starts_with("mailto:")
        || target.starts_with("crate::")
        || target.starts_with("super::")
        || target.starts_with("self::")
        || target.starts_with("std::")
        || target.starts_with("core::")
        || target.starts_with("alloc::")
        // A bare Rust path (`Task`, `Iterator`, `fn@spawn`, `Task::join()`):
        // rustdoc's intra-doc link.
        || (!target.is_empty()
            && !target.contains('/')
            && !target.contains(".md")
            && !target.starts_with('#'))
}

#[test]
fn relative_links_in_the_markdown_files_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files(root) {
        let text = fs::read_to_string(&file).expect("readable Markdown file");
        let dir = file.parent().expect("a file has a parent");
        for (line, target) in links(&text) {
            if not_a_file(&target) {
                continue;
            }
            checked += 1;
            let (path, frag) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let shown = file.strip_prefix(root).unwrap_or(&file).display();
            if !resolved.exists() {
                broken.push(format!("{shown}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(frag) = frag {
                if resolved.extension().is_some_and(|e| e == "md") {
                    let there = fs::read_to_string(&resolved).expect("readable target");
                    if !anchors(&there).iter().any(|a| a == frag) {
                        broken.push(format!("{shown}:{line}: {target}: no such heading"));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no relative link found: the scanner is broken");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_scanner_finds_links_and_skips_code() {
    let text =
        "see [a](docs/a.md) and `[b](b.md)`\n```\n[c](c.md)\n```\n[d](crate::x) [e](f.md#g-h)";
    let found: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(found, ["docs/a.md", "crate::x", "f.md#g-h"]);
    assert_eq!(
        anchor(" Chapter 5 — I/O: the reactor"),
        "chapter-5--io-the-reactor"
    );
    assert!(not_a_file("crate::net::StreamReader"));
    assert!(not_a_file("https://example.com"));
    assert!(not_a_file("Task"));
    assert!(!not_a_file("docs/05-io.md"));
    assert!(!not_a_file("README.md"));
    assert!(!not_a_file("#streams"));
}
