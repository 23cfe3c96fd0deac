//! The layers of both library crates, checked mechanically: every module imports only from
//! modules below it in the list that `docs/ARCHITECTURE.md` writes down (so no import runs
//! up a layer, and there is no cycle), every module of `src/lib.rs` is in the list, and the
//! files inside a folder module (`leader/`, `segment_log/`) import one another without a
//! cycle.
//!
//! An import is any path `crate::x` or `super::x` in code, in `use` trees and in serde
//! attributes (`with = "crate::duration"`), outside comments and test code
//! (`#[cfg(test)] mod tests { .. }` and test-only files). `crate::Name` of a name that
//! `lib.rs` re-exports counts as an import of the module it comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate to check: its name in the document and its `src` folder.
struct Crate {
    name: &'static str,
    src: PathBuf,
}

/// The checked tree: this repository, or the one `EVENTSYNC_LAYERS_ROOT` names (to run the
/// check on another checkout, for example the tree before a change).
fn root() -> PathBuf {
    std::env::var_os("EVENTSYNC_LAYERS_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn crates() -> Vec<Crate> {
    let root = root();
    vec![
        Crate {
            name: "eventsync",
            src: root.join("src"),
        },
        Crate {
            name: "eventsync-backends",
            src: root.join("backends/src"),
        },
        Crate {
            name: "eventsync-server",
            src: root.join("server/src"),
        },
    ]
}

/// The layer list of `crate_name` in `docs/ARCHITECTURE.md`: after the line
/// `<!-- layers: {crate_name} -->`, the numbered items `` N. `module` `` (a trailing `/` marks
/// a folder), bottom first.
fn written_layers(document: &str, crate_name: &str) -> Vec<String> {
    let marker = format!("<!-- layers: {crate_name} -->");
    let mut lines = document
        .lines()
        .skip_while(|line| line.trim() != marker)
        .skip(1);
    let mut layers = Vec::new();
    for line in lines.by_ref() {
        let trimmed = line.trim();
        if let Some(name) = list_item_module(trimmed) {
            layers.push(name);
        } else if trimmed.is_empty() && layers.is_empty() || line.starts_with(' ') {
            // Before the list, or an item's continuation line.
        } else {
            break;
        }
    }
    layers
}

/// `` 3. `name` … `` or `` 3. `name/` … `` gives `name`.
fn list_item_module(line: &str) -> Option<String> {
    let (number, rest) = line.split_once(". `")?;
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let name = rest.split('`').next()?.trim_end_matches('/');
    Some(name.to_owned())
}

/// Source text with comments removed and string contents blanked, except strings that are
/// a path into the crate (`"crate::duration"`), which serde attributes use as imports.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !is_ident(chars.get(i.wrapping_sub(1)))
        {
            // A raw string: r"…", r#"…"#.
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let closing: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = chars[j..].iter().collect();
            let end = rest
                .find(&closing)
                .map_or(chars.len(), |at| j + rest[..at].chars().count());
            out.push_str("\"\"");
            i = end + 1 + hashes;
        } else if c == '"' {
            let mut j = i + 1;
            let mut text = String::new();
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                if let Some(&ch) = chars.get(j) {
                    text.push(ch);
                }
                j += 1;
            }
            // `#[serde(with = "crate::duration")]` names a module: an import.
            let attribute = out.trim_end().ends_with("with =") || out.trim_end().ends_with("with=");
            let is_path = attribute
                && text.starts_with("crate::")
                && text
                    .chars()
                    .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == ':');
            out.push('"');
            if is_path {
                out.push_str(&text);
            }
            out.push('"');
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('"', '\n', '{') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// `code` without the bodies of `#[cfg(test)] mod name { … }`.
fn without_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let header = after.trim_start();
        let is_inline_module = header.starts_with("mod ")
            && header
                .find(['{', ';'])
                .is_some_and(|end| header.as_bytes()[end] == b'{');
        if !is_inline_module {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("an inline module has a body");
        let mut depth = 0usize;
        let mut end = after.len();
        for (index, byte) in after.bytes().enumerate().skip(open) {
            match byte {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The modules `code` declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`), and of
/// those, the ones declared under `#[cfg(test)]` (test-only files).
fn declared_modules(code: &str) -> (Vec<String>, BTreeSet<String>) {
    let mut all = Vec::new();
    let mut test_only = BTreeSet::new();
    let mut previous = "";
    for line in code.lines() {
        let trimmed = line.trim();
        let declaration = trimmed
            .strip_prefix("pub(crate) mod ")
            .or_else(|| trimmed.strip_prefix("pub mod "))
            .or_else(|| trimmed.strip_prefix("mod "));
        if let Some(name) = declaration.and_then(|rest| rest.strip_suffix(';')) {
            all.push(name.to_owned());
            if previous == "#[cfg(test)]" {
                test_only.insert(name.to_owned());
            }
        }
        if !trimmed.is_empty() {
            previous = trimmed;
        }
    }
    (all, test_only)
}

/// Names `lib.rs` re-exports from its own modules: `pub use module::{A, B};` maps `A` and
/// `B` to `module`.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = path.split("::").next().unwrap_or_default().trim();
        if !modules.contains(module) {
            continue;
        }
        let items = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => path[open + 1..close].to_owned(),
            _ => path.rsplit("::").next().unwrap_or_default().to_owned(),
        };
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or_default().trim();
            if !name.is_empty() {
                names.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    names
}

/// The first segments of every path that starts with `prefix` (`crate::` or `super::`),
/// including each branch of a `prefix{a, b::c}` use tree.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
            continue;
        }
        if let Some(tree) = rest.strip_prefix('{') {
            let mut depth = 1usize;
            let mut branch = String::new();
            let mut branches = Vec::new();
            for c in tree.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        branches.push(std::mem::take(&mut branch));
                        continue;
                    }
                    _ => {}
                }
                if depth >= 1 {
                    branch.push(c);
                }
            }
            branches.push(branch);
            for branch in branches {
                let first: String = branch
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !first.is_empty() {
                    found.push(first);
                }
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !first.is_empty() {
                found.push(first);
            }
        }
    }
    found
}

/// One source file of a module: its path, whether it is the module's own file (`x.rs` or
/// `x/mod.rs`, whose `super` is the crate root), and its code.
struct SourceFile {
    path: PathBuf,
    top: bool,
    code: String,
}

/// The non-test files of top module `module`, with their code.
fn module_files(src: &Path, module: &str) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    let folder = src.join(module);
    let mut pending = Vec::new();
    if single.is_file() {
        pending.push((single, true));
    }
    if folder.join("mod.rs").is_file() {
        pending.push((folder.join("mod.rs"), true));
    }
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    while let Some((path, top)) = pending.pop() {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let code = without_test_modules(&code_only(&text));
        let (children, tests) = declared_modules(&code);
        let dir = if top {
            folder.clone()
        } else {
            path.with_extension("")
        };
        for child in children {
            let file = [
                dir.join(format!("{child}.rs")),
                dir.join(&child).join("mod.rs"),
            ]
            .into_iter()
            .find(|file| file.is_file());
            if let Some(file) = file {
                if tests.contains(&child) {
                    test_only.insert(file);
                } else {
                    pending.push((file, false));
                }
            }
        }
        files.push(SourceFile { path, top, code });
    }
    files
}

/// Checks one crate; returns every problem found, one sentence each.
fn check_crate(krate: &Crate, document: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let layers = written_layers(document, krate.name);
    if layers.is_empty() {
        return vec![format!(
            "docs/ARCHITECTURE.md has no layer list for {} (`<!-- layers: {} -->`)",
            krate.name, krate.name
        )];
    }
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .map(|(index, name)| (name.as_str(), index))
        .collect();
    let lib = code_only(&std::fs::read_to_string(krate.src.join("lib.rs")).expect("lib.rs"));
    let (declared, _) = declared_modules(&without_test_modules(&lib));
    let modules: BTreeSet<String> = declared.iter().cloned().collect();
    for module in &modules {
        if !rank.contains_key(module.as_str()) {
            problems.push(format!(
                "{}: module `{module}` is not in the layer list of docs/ARCHITECTURE.md",
                krate.name
            ));
        }
    }
    for layer in &layers {
        if !modules.contains(layer) {
            problems.push(format!(
                "{}: the layer list names `{layer}`, which lib.rs does not declare",
                krate.name
            ));
        }
    }
    let reexported = reexports(&lib, &modules);
    for module in &modules {
        let Some(&own_rank) = rank.get(module.as_str()) else {
            continue;
        };
        let files = module_files(&krate.src, module);
        let mut sibling_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let siblings: BTreeSet<String> = files
            .iter()
            .filter(|file| !file.top)
            .filter_map(|file| file.path.file_stem())
            .map(|stem| stem.to_string_lossy().into_owned())
            .collect();
        for file in &files {
            let mut targets = paths_after(&file.code, "crate::");
            if file.top {
                targets.extend(paths_after(&file.code, "super::"));
            } else {
                let stem = file
                    .path
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default();
                for sibling in paths_after(&file.code, "super::") {
                    if siblings.contains(&sibling) && sibling != stem {
                        sibling_edges
                            .entry(stem.clone())
                            .or_default()
                            .insert(sibling);
                    }
                }
                let own = format!("crate::{module}::");
                for sibling in paths_after(&file.code, &own) {
                    if siblings.contains(&sibling) && sibling != stem {
                        sibling_edges
                            .entry(stem.clone())
                            .or_default()
                            .insert(sibling);
                    }
                }
            }
            for target in targets {
                let target_module = if modules.contains(&target) {
                    target
                } else if let Some(module) = reexported.get(&target) {
                    module.clone()
                } else {
                    continue;
                };
                if &target_module == module {
                    continue;
                }
                let target_rank = rank.get(target_module.as_str()).copied();
                if target_rank.is_none_or(|target_rank| target_rank > own_rank) {
                    problems.push(format!(
                        "{}: {} (layer `{module}`) imports `{target_module}`, which is above it",
                        krate.name,
                        file.path
                            .strip_prefix(&krate.src)
                            .unwrap_or(&file.path)
                            .display()
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(&sibling_edges) {
            problems.push(format!(
                "{}: the files of `{module}/` import one another in a cycle: {}",
                krate.name,
                cycle.join(" -> ")
            ));
        }
    }
    problems
}

/// A cycle of the directed graph `edges`, as the nodes along it, or `None`.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

fn architecture() -> String {
    let path = root().join("docs/ARCHITECTURE.md");
    std::fs::read_to_string(&path).expect("docs/ARCHITECTURE.md")
}

#[test]
fn test_every_module_imports_only_from_the_layers_below_it() {
    let document = architecture();
    let problems: Vec<String> = crates()
        .iter()
        .flat_map(|krate| check_crate(krate, &document))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- the checker can fail ---------------------------------------------------------------

/// A throwaway crate in a temporary folder: `files` as `(path under src, text)`.
fn scratch_crate(files: &[(&str, &str)]) -> (tempfile::TempDir, Crate) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (path, text) in files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("a folder");
        std::fs::write(&file, text).expect("a file");
    }
    let krate = Crate {
        name: "scratch",
        src: dir.path().to_path_buf(),
    };
    (dir, krate)
}

const SCRATCH_LAYERS: &str =
    "<!-- layers: scratch -->\n1. `low` — below\n2. `high/` — above,\n   a folder\n\nprose";

#[test]
fn test_checker_reads_the_written_list() {
    assert_eq!(written_layers(SCRATCH_LAYERS, "scratch"), ["low", "high"]);
    assert!(written_layers(SCRATCH_LAYERS, "other").is_empty());
}

#[test]
fn test_checker_accepts_downward_imports_and_ignores_comments_strings_and_tests() {
    let (_dir, krate) = scratch_crate(&[
        ("lib.rs", "mod low;\nmod high;\npub use low::Thing;\n"),
        (
            "low.rs",
            "pub struct Thing;\n// use crate::high::X;\nconst S: &str = \"crate::high\";\n\
             #[cfg(test)]\nmod tests {\n    use crate::high::Y;\n    fn f() { let _ = '{'; }\n}\n",
        ),
        ("high/mod.rs", "mod a;\nmod b;\nuse crate::Thing;\n"),
        ("high/a.rs", "use super::b::B;\n"),
        ("high/b.rs", "pub struct B;\n"),
    ]);
    assert_eq!(check_crate(&krate, SCRATCH_LAYERS), Vec::<String>::new());
}

#[test]
fn test_checker_refuses_an_upward_import_a_serde_path_and_an_unlisted_module() {
    let (_dir, krate) = scratch_crate(&[
        (
            "lib.rs",
            "mod low;\nmod high;\nmod extra;\npub use high::Top;\n",
        ),
        (
            "low.rs",
            "use crate::{Top, high::X};\n#[serde(with = \"crate::high\")]\nstruct S;\n",
        ),
        ("high.rs", "pub struct Top;\n"),
        ("extra.rs", ""),
    ]);
    let problems = check_crate(&krate, SCRATCH_LAYERS);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains("`extra`"), "{problems:#?}");
    assert!(
        problems[1..]
            .iter()
            .all(|problem| problem.contains("low.rs (layer `low`) imports `high`")),
        "{problems:#?}"
    );
}

#[test]
fn test_checker_refuses_a_cycle_between_the_files_of_a_folder() {
    let (_dir, krate) = scratch_crate(&[
        ("lib.rs", "mod low;\nmod high;\n"),
        ("low.rs", ""),
        ("high/mod.rs", "mod a;\nmod b;\n#[cfg(test)]\nmod t;\n"),
        ("high/a.rs", "use super::b::B;\n"),
        ("high/b.rs", "use crate::high::a::A;\n"),
        ("high/t.rs", "use crate::high::a::A;\n"),
    ]);
    let problems = check_crate(&krate, SCRATCH_LAYERS);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("a -> b -> a"), "{problems:#?}");
}
