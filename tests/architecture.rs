//! The architecture's dependency rules, checked on the crate's own `src/`.
//!
//! The server is built in floors (the map at the top of `src/lib.rs`):
//! wiring, then the features, the handlers' shared kit, transport and
//! storage, and the leaves (time, logging, configuration, ...) at the
//! bottom. The compiler accepts an import that points upward without a word,
//! yet one such import ties the floors into a circle in which no file can be
//! read, tested or changed alone. So this test reads the sources and fails
//! when
//!
//! 1. files of `src/` import each other in a circle;
//! 2. a file imports from a floor above its own, or belongs to no floor;
//! 3. a file of `src/http/` imports anything but `src/http/` and the leaves;
//! 4. a leaf imports anything but the leaves.
//!
//! An import is a `crate::` or `super::` path that names a file: in a `use`
//! declaration, written inline (`crate::log!(...)`), or starting with a name
//! that such a `use` brought in (`use crate::files;` then
//! `files::upload::f`). A path names the file of its longest module prefix.
//! Unit-test modules (`#[cfg(test)] mod name { ... }`) may reach anywhere and
//! are left out, as are comments and string literals.
//!
//! This reads tokens rather than resolving names as the compiler does: a
//! path that merely looks like an import counts as one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The leaf modules at the crate root: everything may use them, so they may
/// use nothing but each other. A leaf is `src/NAME.rs` or `src/NAME/`; one
/// that does not exist (yet) has no files, and the rules about it hold
/// vacuously.
const LEAVES: &[&str] = &[
    "clock",
    "log",
    "config",
    "sys",
    "shutdown",
    "sync",
    "json",
    "cidr",
    "metrics",
    "descriptors",
];

/// The transport layer's module at the crate root: it sits under everything
/// but the leaves.
const TRANSPORT: &str = "http";

/// The floors of the map in `src/lib.rs`, top first, by module at the crate
/// root ("" is the root itself: `lib.rs` and `main.rs`). A file may import
/// from its own floor or any below it. A new module must be placed here, or
/// the floor test fails: where it sits is a decision, not an accident.
const FLOORS: &[(&str, &[&str])] = &[
    ("wiring", &["", "startup", "app", "routes", "scrape", "ops"]),
    ("features", &["accounts", "chat", "files", "pages", "health"]),
    ("kit", &["api"]),
    ("transport and storage", &["http", "ws", "auth", "db", "pool"]),
    ("leaves", LEAVES),
];

#[test]
fn src_has_no_import_circle() {
    let circles = circles(&read_crate(&src_dir()).imports);
    let report: Vec<String> = circles
        .iter()
        .map(|circle| format!("circle of {}: {}", circle.len(), circle.join(", ")))
        .collect();
    assert_none(
        report,
        "files of src/ import each other in a circle; break it by moving what both sides need down a layer",
    );
}

#[test]
fn every_file_imports_only_from_its_floor_or_below() {
    assert_none(
        floor_violations(&read_crate(&src_dir())),
        "a file may import only from its own floor or below (see FLOORS and src/lib.rs)",
    );
}

#[test]
fn http_imports_only_itself_and_leaves() {
    assert_none(
        transport_violations(&read_crate(&src_dir())),
        &format!("src/{TRANSPORT}/ may import only itself and the leaves {LEAVES:?}"),
    );
}

#[test]
fn leaves_import_only_leaves() {
    assert_none(
        leaf_violations(&read_crate(&src_dir())),
        &format!("the leaves {LEAVES:?} may import only each other"),
    );
}

/// Fails with the rule and every place that breaks it, one a line.
fn assert_none(found: Vec<String>, rule: &str) {
    assert!(found.is_empty(), "{rule}:\n{}", found.join("\n"));
}

/// The analysis on small trees written for it: the tests above fail on
/// a tree that breaks the rules, and these make sure the analysis also
/// passes one that keeps them, so that a failure above is the tree's fault.
mod analysis {
    use super::*;

    #[test]
    fn a_circle_of_two_files_is_one_component_and_the_file_outside_it_is_not() {
        let krate = read_synthetic(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            ("b.rs", "pub struct B(super::a::A);\n"),
            ("c.rs", "use crate::{a::A, b::B};\n"),
        ]);
        assert_eq!(circles(&krate.imports), [["src/a.rs", "src/b.rs"]]);
    }

    #[test]
    fn every_way_of_naming_a_file_is_an_import_and_a_tree_without_circle_passes() {
        let krate = read_synthetic(&[
            // A renamed module is a path prefix under its new name.
            (
                "lib.rs",
                "pub mod http;\npub mod log;\npub mod store;\n\
                 use crate::store as storage;\n\
                 pub fn run() { storage::disk::write(); }\n",
            ),
            // Paths in comments, strings and the test module are no imports;
            // the `'}'` would end the test module early if character literals
            // were read as braces.
            (
                "log.rs",
                "// crate::store\n/* crate::http::conn */\n\
                 pub fn write(line: &str) { let _ = (\"crate::store\", line); }\n\
                 #[macro_export]\nmacro_rules! log { ($l:expr) => { $crate::log::write($l) }; }\n\
                 #[cfg(test)]\nmod tests {\n    fn brace() -> char { '}' }\n    use crate::store::disk;\n}\n",
            ),
            // `super` of a `mod.rs` is its directory's parent, here the root;
            // `self` in a group brings in the group's prefix by its name.
            (
                "store/mod.rs",
                "pub mod disk;\nuse super::http::{self, conn::Conn as Wire};\n\
                 pub fn body() -> http::body::Body { http::body::Body }\n",
            ),
            // Each `super` climbs one module.
            (
                "store/disk.rs",
                "pub fn write() { super::super::log::write(\"disk\"); }\n",
            ),
            ("http/mod.rs", "pub mod body;\npub mod conn;\n"),
            (
                "http/conn.rs",
                "use super::body::Body;\npub struct Conn(Body);\npub fn f() { crate::log!(\"x\"); }\n",
            ),
            // `//` in a string starts no comment: the `use` after it counts.
            (
                "http/body.rs",
                "pub const URL: &str = \"http://x\"; pub use crate::log::write;\npub struct Body; // crate::store\n",
            ),
        ]);
        let expected = [
            ("src/http/body.rs", &["src/log.rs"][..]),
            ("src/http/conn.rs", &["src/http/body.rs", "src/log.rs"]),
            ("src/http/mod.rs", &[]),
            ("src/lib.rs", &["src/store/disk.rs", "src/store/mod.rs"]),
            ("src/log.rs", &[]),
            ("src/store/disk.rs", &["src/log.rs"]),
            (
                "src/store/mod.rs",
                &["src/http/body.rs", "src/http/conn.rs", "src/http/mod.rs"],
            ),
        ];
        let expected: BTreeMap<String, BTreeSet<String>> = expected
            .iter()
            .map(|(file, targets)| (file.to_string(), targets.iter().map(|t| t.to_string()).collect()))
            .collect();
        assert_eq!(krate.imports, expected);
        assert_eq!(circles(&krate.imports), Vec::<Vec<String>>::new());
        assert_eq!(transport_violations(&krate), Vec::<String>::new());
        assert_eq!(leaf_violations(&krate), Vec::<String>::new());
    }

    #[test]
    fn each_import_that_climbs_out_of_the_transport_or_the_leaves_is_reported() {
        let krate = read_synthetic(&[
            (
                "lib.rs",
                "pub mod clock;\npub mod http;\npub mod log;\npub mod router;\npub mod server;\n",
            ),
            ("clock.rs", "pub fn now() {}\n"),
            ("log.rs", "use crate::clock::now;\nuse crate::server::Server;\n"),
            ("http/mod.rs", "pub mod conn;\n"),
            ("http/conn.rs", "use crate::{log, router::Routes};\n"),
            ("router.rs", "pub struct Routes;\n"),
            ("server.rs", "pub struct Server;\n"),
        ]);
        assert_eq!(transport_violations(&krate), ["src/http/conn.rs imports src/router.rs"]);
        assert_eq!(leaf_violations(&krate), ["src/log.rs imports src/server.rs"]);
    }

    #[test]
    fn an_import_from_a_higher_floor_and_a_file_on_no_floor_are_reported() {
        let krate = read_synthetic(&[
            (
                "lib.rs",
                "mod api;
mod chat;
mod clock;
mod stray;
",
            ),
            (
                "api/mod.rs",
                "use crate::chat::room::Room;
use crate::clock::now;
",
            ),
            (
                "chat/mod.rs",
                "pub mod room;
",
            ),
            (
                "chat/room.rs",
                "use crate::api::Ctx;
pub struct Room;
",
            ),
            (
                "clock.rs",
                "pub fn now() {}
",
            ),
            (
                "stray.rs",
                "pub fn lost() {}
",
            ),
        ]);
        assert_eq!(
            floor_violations(&krate),
            [
                "src/api/mod.rs (kit) imports src/chat/room.rs (features)",
                "src/stray.rs is on no floor",
            ]
        );
    }

    /// Reads a `src/` tree of the given files (paths relative to `src/`),
    /// written to a temporary directory that is gone when this returns.
    fn read_synthetic(files: &[(&str, &str)]) -> Crate {
        let root = tempfile::tempdir().expect("a temporary directory");
        let src = root.path().join("src");
        for (path, text) in files {
            let path = src.join(path);
            fs::create_dir_all(path.parent().expect("a file has a directory")).expect("create the directory");
            fs::write(&path, text).expect("write the file");
        }
        read_crate(&src)
    }
}

/// The crate's own `src/`.
fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A module below the crate root, e.g. `["http", "conn"]`; empty for the root.
type ModulePath = Vec<String>;

/// The files of a `src/` tree and which file imports which, each file by its
/// name in reports (`src/http/conn.rs`).
struct Crate {
    /// Each file's module.
    files: BTreeMap<String, ModulePath>,
    /// Each file's imports; a file never imports itself.
    imports: BTreeMap<String, BTreeSet<String>>,
}

/// Reads every `.rs` file under `src` and the imports between them.
fn read_crate(src: &Path) -> Crate {
    let sources: Vec<(PathBuf, String, ModulePath)> = rust_files(src)
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(src).expect("a file under src/").to_path_buf();
            (path, report_name(&relative), module_path(&relative))
        })
        .collect();
    // By name, `lib.rs` comes before `main.rs` and so holds the root: the
    // other files are the library's modules, whose `crate::` is `lib.rs`.
    let mut modules: BTreeMap<&[String], &str> = BTreeMap::new();
    for (_, name, module) in &sources {
        modules.entry(module.as_slice()).or_insert(name.as_str());
    }
    let imports = sources
        .iter()
        .map(|(path, name, module)| {
            let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let targets = referenced_paths(&without_test_modules(&tokenize(&text)))
                .iter()
                .filter_map(|path| resolve(path, module, &modules))
                .filter(|target| target != name)
                .map(str::to_string)
                .collect();
            (name.clone(), targets)
        })
        .collect();
    let files = sources.into_iter().map(|(_, name, module)| (name, module)).collect();
    Crate { files, imports }
}

/// The `.rs` files under `dir`, at any depth.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// A file's name in reports, from its path relative to `src/`: `src/a/b.rs`
/// with `/` on every platform.
fn report_name(relative: &Path) -> String {
    let parts: Vec<_> = relative.iter().map(|part| part.to_string_lossy()).collect();
    format!("src/{}", parts.join("/"))
}

/// The module a file defines, from its path relative to `src/`: `a/b.rs` and
/// `a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` are the crate root.
fn module_path(relative: &Path) -> ModulePath {
    let mut parts: ModulePath = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let is_root = parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main");
    if is_root || parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts
}

/// Splits Rust source into words (identifiers, keywords, numbers), `::` and
/// single other characters. Comments and string and character literals are
/// dropped: a path in them is no import, and a brace in them must not upset
/// the brace matching that finds the end of a test module.
fn tokenize(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let len = if first.is_whitespace() {
            first.len_utf8()
        } else if let Some(len) = comment_len(rest).or_else(|| literal_len(rest)) {
            len
        } else {
            let len = token_len(rest);
            tokens.push(&rest[..len]);
            len
        };
        rest = &rest[len..];
    }
    tokens
}

/// The length of the token `rest` starts with: a word, `::`, or one character.
fn token_len(rest: &str) -> usize {
    let word = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    match (word, rest.starts_with("::")) {
        (0, true) => 2,
        (0, false) => rest.chars().next().map_or(0, char::len_utf8),
        (word, _) => word,
    }
}

/// The length of the comment `rest` starts with, if it does. Block comments
/// nest, as in Rust.
fn comment_len(rest: &str) -> Option<usize> {
    if rest.starts_with("//") {
        return Some(rest.find('\n').unwrap_or(rest.len()));
    }
    if !rest.starts_with("/*") {
        return None;
    }
    let mut depth = 0;
    let mut at = 0;
    while at < rest.len() {
        if rest[at..].starts_with("/*") {
            depth += 1;
            at += 2;
        } else if rest[at..].starts_with("*/") {
            depth -= 1;
            at += 2;
            if depth == 0 {
                return Some(at);
            }
        } else {
            at += rest[at..].chars().next().map_or(1, char::len_utf8);
        }
    }
    Some(rest.len())
}

/// The length of the string or character literal `rest` starts with, if it
/// does: `"..."` and `'...'`, with a `b` or `c` prefix, and raw strings
/// `r#"..."#`. A lifetime or a label (`'a`) is no literal.
fn literal_len(rest: &str) -> Option<usize> {
    let unprefixed = rest.strip_prefix(['b', 'c']).unwrap_or(rest);
    if let Some(raw) = unprefixed.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        // Otherwise a word that starts with `r`, or a raw identifier `r#name`.
        raw[hashes..].starts_with('"').then_some(())?;
        let body = rest.len() - raw.len() + hashes + 1;
        let closing = format!("\"{}", "#".repeat(hashes));
        return Some(
            rest[body..]
                .find(&closing)
                .map_or(rest.len(), |end| body + end + closing.len()),
        );
    }
    let quote = unprefixed.chars().next().filter(|&c| c == '"' || c == '\'')?;
    let body = rest.len() - unprefixed.len() + 1;
    if quote == '\'' {
        // A character literal holds an escape or one character then `'`.
        let mut chars = rest[body..].chars();
        match (chars.next(), chars.next()) {
            (Some('\\'), _) | (Some(_), Some('\'')) => {}
            _ => return None,
        }
    }
    let mut chars = rest[body..].char_indices();
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return Some(body + at + 1);
        }
    }
    Some(rest.len())
}

/// The tokens without the `#[cfg(test)] mod name { ... }` blocks.
fn without_test_modules<'a>(tokens: &[&'a str]) -> Vec<&'a str> {
    let mut kept = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        match test_module_len(&tokens[at..]) {
            Some(len) => at += len,
            None => {
                kept.push(tokens[at]);
                at += 1;
            }
        }
    }
    kept
}

/// If `tokens` start with `#[cfg(test)] [pub] mod name {`, the number of
/// tokens through the matching `}`.
fn test_module_len(tokens: &[&str]) -> Option<usize> {
    let rest = tokens.strip_prefix(&["#", "[", "cfg", "(", "test", ")", "]"][..])?;
    let rest = rest.strip_prefix(&["pub"][..]).unwrap_or(rest);
    let ["mod", _, "{", body @ ..] = rest else {
        return None;
    };
    let mut depth = 1;
    for (at, token) in body.iter().enumerate() {
        match *token {
            "{" => depth += 1,
            "}" => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return Some(tokens.len() - body.len() + at + 1);
        }
    }
    Some(tokens.len())
}

/// One name a `use` declaration brings in: the path it stands for, and the
/// name it is known by (none for a glob or `as _`).
struct UseItem<'a> {
    path: Vec<&'a str>,
    name: Option<&'a str>,
}

/// Every path in the tokens that starts at `crate::` or `super::`: those of
/// `use` declarations, those written inline, and those that start with a
/// name such a `use` brought in, spelled out from the crate or `super`.
fn referenced_paths<'a>(tokens: &[&'a str]) -> Vec<Vec<&'a str>> {
    let from_crate = |path: &[&str]| matches!(path.first(), Some(&"crate" | &"super"));
    let items: Vec<UseItem> = use_items(tokens)
        .into_iter()
        .filter(|item| from_crate(&item.path))
        .collect();
    let brought_in: BTreeMap<&str, &[&str]> = items
        .iter()
        .filter_map(|item| Some((item.name?, item.path.as_slice())))
        .collect();
    let mut paths: Vec<Vec<&str>> = items.iter().map(|item| item.path.clone()).collect();
    for path in written_paths(tokens) {
        if from_crate(&path) {
            paths.push(path);
        } else if let Some(prefix) = brought_in.get(path[0]) {
            paths.push([*prefix, &path[1..]].concat());
        }
    }
    paths
}

/// The paths of two or more segments written in the tokens (`a::b::c`), each
/// from its first segment: no path is read from its middle.
fn written_paths<'a>(tokens: &[&'a str]) -> Vec<Vec<&'a str>> {
    let is_word = |token: &&str| token.starts_with(|c: char| c.is_alphanumeric() || c == '_');
    let mut paths = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let mut path = Vec::new();
        if is_word(&tokens[at]) && (at == 0 || tokens[at - 1] != "::") {
            path.push(tokens[at]);
            while tokens.get(at + 1) == Some(&"::") && tokens.get(at + 2).is_some_and(is_word) {
                path.push(tokens[at + 2]);
                at += 2;
            }
        }
        if path.len() > 1 {
            paths.push(path);
        }
        at += 1;
    }
    paths
}

/// The names every `use` declaration in the tokens brings in, with its
/// `{...}` groups spelled out: `use a::{b, c::{d as e}}` is `a::b` as `b` and
/// `a::c::d` as `e`.
fn use_items<'a>(tokens: &[&'a str]) -> Vec<UseItem<'a>> {
    let mut items = Vec::new();
    for (at, _) in tokens.iter().enumerate().filter(|(_, token)| **token == "use") {
        use_tree(tokens, &mut (at + 1), &[], &mut items);
    }
    items
}

/// Reads the use tree at `tokens[*at]` below `prefix` into `items`, leaving
/// `*at` after it. Anything that is no use tree (`use<'a>` in a return type)
/// is left unread.
fn use_tree<'a>(tokens: &[&'a str], at: &mut usize, prefix: &[&'a str], items: &mut Vec<UseItem<'a>>) {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(*at).copied() {
            Some("{") => {
                *at += 1;
                use_group(tokens, at, &path, items);
                return;
            }
            Some("*") => {
                *at += 1;
                items.push(UseItem { path, name: None });
                return;
            }
            // A leading `::`, as in `use ::std::io`.
            Some("::") => *at += 1,
            Some(word) if word.starts_with(|c: char| c.is_alphanumeric() || c == '_') => {
                *at += 1;
                // `self` inside a group names the group's prefix.
                if word != "self" || path.is_empty() {
                    path.push(word);
                }
                if tokens.get(*at) != Some(&"::") {
                    break;
                }
                *at += 1;
            }
            _ => return,
        }
    }
    let name = if tokens.get(*at) == Some(&"as") {
        *at += 2;
        tokens.get(*at - 1).copied().filter(|name| *name != "_")
    } else {
        path.last().copied()
    };
    items.push(UseItem { path, name });
}

/// Reads the trees of a `{...}` group after its `{` below `prefix`, leaving
/// `*at` after its `}`.
fn use_group<'a>(tokens: &[&'a str], at: &mut usize, prefix: &[&'a str], items: &mut Vec<UseItem<'a>>) {
    while let Some(&token) = tokens.get(*at) {
        match token {
            "}" => {
                *at += 1;
                return;
            }
            "," => *at += 1,
            _ => {
                let before = *at;
                use_tree(tokens, at, prefix, items);
                // Malformed: stop rather than read the same token forever.
                if *at == before {
                    return;
                }
            }
        }
    }
}

/// The file a `crate::` or `super::` path lands in, seen from module `here`:
/// the file of the path's longest module prefix. `super` is `here`'s parent,
/// whether `here` is `x/mod.rs` or `x.rs`.
fn resolve<'m>(path: &[&str], here: &[String], modules: &BTreeMap<&[String], &'m str>) -> Option<&'m str> {
    let (base, rest) = match path.first() {
        Some(&"crate") => (&[][..], &path[1..]),
        Some(&"super") => {
            let ups = path.iter().take_while(|segment| **segment == "super").count();
            (&here[..here.len().saturating_sub(ups)], &path[ups..])
        }
        _ => return None,
    };
    let full: ModulePath = base
        .iter()
        .cloned()
        .chain(rest.iter().map(|segment| segment.to_string()))
        .collect();
    (0..=full.len())
        .rev()
        .find_map(|len| modules.get(&full[..len]).copied())
}

/// The import circles: the strongly connected components of more than one
/// file, each sorted by name, in name order.
fn circles(imports: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let names: Vec<&String> = imports.keys().collect();
    let number: BTreeMap<&String, usize> = names.iter().enumerate().map(|(n, name)| (*name, n)).collect();
    let successors: Vec<Vec<usize>> = imports
        .values()
        .map(|targets| targets.iter().map(|target| number[target]).collect())
        .collect();
    let mut circles: Vec<Vec<String>> = strongly_connected_components(&successors)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let mut files: Vec<String> = component.into_iter().map(|n| names[n].clone()).collect();
            files.sort();
            files
        })
        .collect();
    circles.sort();
    circles
}

/// The strongly connected components of the graph on nodes
/// `0..successors.len()`, by Tarjan's algorithm.
fn strongly_connected_components(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let nodes = successors.len();
    let mut tarjan = Tarjan {
        successors,
        order: vec![None; nodes],
        low: vec![0; nodes],
        reached: 0,
        stack: Vec::new(),
        on_stack: vec![false; nodes],
        components: Vec::new(),
    };
    for node in 0..nodes {
        if tarjan.order[node].is_none() {
            tarjan.visit(node);
        }
    }
    tarjan.components
}

/// The state of Tarjan's depth-first search.
struct Tarjan<'g> {
    successors: &'g [Vec<usize>],
    /// When the search first reached each node, once it has.
    order: Vec<Option<usize>>,
    /// The earliest `order` of a node still on the stack that each node
    /// reaches: a node whose `low` is its own `order` roots a component.
    low: Vec<usize>,
    /// How many nodes the search has reached.
    reached: usize,
    /// The reached nodes not yet in a component.
    stack: Vec<usize>,
    on_stack: Vec<bool>,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, node: usize) {
        self.order[node] = Some(self.reached);
        self.low[node] = self.reached;
        self.reached += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        for &next in &self.successors[node] {
            match self.order[next] {
                None => {
                    self.visit(next);
                    self.low[node] = self.low[node].min(self.low[next]);
                }
                Some(order) if self.on_stack[next] => self.low[node] = self.low[node].min(order),
                Some(_) => {}
            }
        }
        if Some(self.low[node]) == self.order[node] {
            let mut component = Vec::new();
            while let Some(member) = self.stack.pop() {
                self.on_stack[member] = false;
                component.push(member);
                if member == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// The imports out of the transport layer into anything but itself and the
/// leaves.
fn transport_violations(krate: &Crate) -> Vec<String> {
    imports_outside(krate, is_transport, |module| is_transport(module) || is_leaf(module))
}

/// Every import into a higher floor than its file's, and every file whose
/// module is on no floor.
fn floor_violations(krate: &Crate) -> Vec<String> {
    let mut found = Vec::new();
    for (file, module) in &krate.files {
        let Some(floor) = floor_of(module) else {
            found.push(format!("{file} is on no floor"));
            continue;
        };
        for target in krate.imports.get(file).into_iter().flatten() {
            match floor_of(&krate.files[target]) {
                Some(higher) if higher < floor => found.push(format!(
                    "{file} ({}) imports {target} ({})",
                    FLOORS[floor].0, FLOORS[higher].0
                )),
                _ => {}
            }
        }
    }
    found
}

/// The index in [`FLOORS`] of the floor a module sits on, by its top-level
/// module.
fn floor_of(module: &[String]) -> Option<usize> {
    let top = module.first().map_or("", String::as_str);
    FLOORS.iter().position(|(_, modules)| modules.contains(&top))
}

/// The imports out of the leaves into anything but the leaves.
fn leaf_violations(krate: &Crate) -> Vec<String> {
    imports_outside(krate, is_leaf, is_leaf)
}

/// Every import from a file whose module `from` selects into one whose
/// module `allowed` refuses, as "src/a.rs imports src/b.rs".
fn imports_outside(krate: &Crate, from: fn(&[String]) -> bool, allowed: fn(&[String]) -> bool) -> Vec<String> {
    krate
        .imports
        .iter()
        .filter(|(file, _)| from(&krate.files[*file]))
        .flat_map(|(file, targets)| {
            targets
                .iter()
                .filter(|target| !allowed(&krate.files[*target]))
                .map(move |target| format!("{file} imports {target}"))
        })
        .collect()
}

/// Whether a module is in the transport layer.
fn is_transport(module: &[String]) -> bool {
    module.first().is_some_and(|top| top == TRANSPORT)
}

/// Whether a module is a leaf or inside one.
fn is_leaf(module: &[String]) -> bool {
    module.first().is_some_and(|top| LEAVES.contains(&top.as_str()))
}
